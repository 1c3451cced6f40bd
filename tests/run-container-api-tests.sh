#!/bin/bash
# Runs the black-box API tests (api_tests/) against the codejail container
# image, started with deploy/podman/run.sh (the flags `make podman-run` uses),
# its port published on 127.0.0.1 only.
#
# usage: tests/run-container-api-tests.sh [IMAGE] [-- PYTEST_ARGS...]
#        (IMAGE default codejail:latest; PODMAN overrides the podman command)
#
# Three containers of the image:
#   main           execution on, the profile's default limits plus the
#                  limit_overrides context the suite tests, and a canary
#                  variable in its environment that sandboxed code must not see;
#   disabled       execution off: the suite's 500 "not enabled" test;
#   misconfigured  started without unmask=/proc/sys, a deployment mistake
#                  the start-up safety check must catch: /health/ 503 and the
#                  500 "not correctly configured" refusal.
# Then: main's /health/ must report the sandbox layers active, the suite must
# pass, and main must stop cleanly on SIGTERM (podman stop). Exit non-zero on
# any failure, with the containers' logs.
#
# CI runs this rootless, as an unprivileged user with subordinate ids
# (scripts/ci-podman-setup.sh run tests/run-container-api-tests.sh ...).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
podman=${PODMAN:-podman}
python=/usr/bin/python3
image=codejail:latest
if [ $# -gt 0 ] && [ "$1" != -- ]; then image=$1; shift; fi
[ "${1:-}" = -- ] && shift

tag=cjtest-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/codejail-container-tests.XXXXXX")
names=()

cleanup() {
    local n
    for n in "${names[@]}"; do
        $podman rm -f -t 0 "$n" > /dev/null 2>&1
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    local n
    echo "run-container-api-tests: FAIL: $*" >&2
    for n in "${names[@]}"; do
        echo "---- container $n, last 30 log lines ----" >&2
        $podman logs --tail 30 "$n" 2>&1 | cut -c1-400 >&2
    done
    exit 1
}

free_port() {
    $python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

$podman image exists "$image" || fail "no image $image (make image)"
echo "== $($podman --version), $($podman info --format 'rootless={{.Host.Security.Rootless}} runtime={{.Host.OCIRuntime.Name}}'), image $image"

declare -A port
# start NAME [run.sh options...]
start() {
    local n=$1
    shift
    port[$n]=$(free_port)
    names+=("$tag-$n")
    PODMAN="$podman" "$here/deploy/podman/run.sh" -d --keep --name "$tag-$n" --port "${port[$n]}" "$@" \
        "$image" > "$work/$n.id" 2> "$work/$n.err" ||
        { cat "$work/$n.err" >&2; fail "could not start container $n"; }
}

# wait_health NAME WANT: until /health/ answers WANT (a status, or "any"), 90 s.
wait_health() {
    local n=$1 want=$2 code="" deadline=$((SECONDS + 90))
    while :; do
        code=$(curl -s -o "$work/$n.health" -w '%{http_code}' --max-time 5 \
               "http://127.0.0.1:${port[$n]}/health/" 2>/dev/null)
        if [ "$code" = "$want" ] || { [ "$want" = any ] && [ -n "$code" ] && [ "$code" != 000 ]; }; then
            return 0
        fi
        [ "$($podman inspect -f '{{.State.Running}}' "$tag-$n" 2>/dev/null)" = true ] ||
            fail "container $n exited before /health/ answered $want"
        [ $SECONDS -ge $deadline ] &&
            fail "container $n: /health/ did not answer $want within 90 s (last: ${code:-none} $(cat "$work/$n.health" 2>/dev/null))"
        sleep 0.5
    done
}

override=api-tests-long
canary_name=CJ_API_TESTS_SECRET
canary_value=$($python -c 'import secrets; print(secrets.token_hex(16))')
printf '{"limit_overrides": {"%s": {"REALTIME": 10, "CPU": 5}}}\n' "$override" > "$work/main.json"
chmod 644 "$work/main.json"
chmod 755 "$work"

start main --config "$work/main.json" -e "$canary_name=$canary_value"
start disabled --disabled
start misconfigured --omit-unmask
wait_health main 200
wait_health disabled 200
wait_health misconfigured any

# The sandbox really is there: every layer this kernel offers is active.
$python - "$work/main.health" <<'EOF' || fail "main: /health/ does not show the sandbox layers active"
import json, sys
h = json.load(open(sys.argv[1]))
layers = h.get("layers", {})
want = ["userns", "mountns", "pidns", "netns", "seccomp", "rlimits"]
bad = [n for n in want if layers.get(n, {}).get("state") != "active"]
print("main /health/: " + ", ".join(f"{n} {v.get('state')}" for n, v in layers.items()))
sys.exit(1 if bad or h.get("status") != "OK" else 0)
EOF
grep -q '"UNAVAILABLE"' "$work/misconfigured.health" ||
    fail "misconfigured: /health/ is not UNAVAILABLE without unmask=/proc/sys: $(cat "$work/misconfigured.health")"
echo "misconfigured /health/: $(head -c 300 "$work/misconfigured.health")"

echo "== api tests against $image at http://127.0.0.1:${port[main]}"
export CODEJAIL_SERVICE_URL="http://127.0.0.1:${port[main]}"
export CODEJAIL_API_TESTS_OVERRIDE_CONTEXT="$override"
export CODEJAIL_API_TESTS_ENV_CANARY="$canary_name=$canary_value"
export CODEJAIL_API_TESTS_DISABLED_URL="http://127.0.0.1:${port[disabled]}"
export CODEJAIL_API_TESTS_MISCONFIGURED_URL="http://127.0.0.1:${port[misconfigured]}"
export CODEJAIL_API_TESTS_ONE_CLIENT_ADDRESS=1
export PYTHONDONTWRITEBYTECODE=1
$python -m pytest -p no:cacheprovider -q -rfEs "$here/api_tests" "$@"
tests=$?

# Clean stop: SIGTERM, exit 0 within 30 s.
$podman kill -s TERM "$tag-main" > /dev/null || fail "could not signal main"
status=$(timeout 30 $podman wait "$tag-main" 2>&1) || status="no exit within 30 s ($status)"
[ "$status" = 0 ] || fail "main: exit status $status after SIGTERM (expected 0)"
echo "main stopped cleanly on SIGTERM"

[ $tests -eq 0 ] || fail "api tests failed"
echo "run-container-api-tests: OK"
