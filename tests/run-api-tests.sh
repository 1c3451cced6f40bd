#!/bin/bash
# Runs the black-box API tests (api_tests/) against the daemon of a build.
#
# usage: tests/run-api-tests.sh [--pool-off] [--lms-prolog] [--without LAYER[,LAYER...]] BUILD_DIR
#                              [-- PYTEST_ARGS...]
#
# Inside a network namespace of its own (only loopback, up), it starts
#   BUILD_DIR/codejaild --profile development --listen 127.0.0.1 --port <free port>
# with a config file that adds the limit override the suite needs, waits for
# /health/ to answer 200, runs the suite, then stops the daemon with SIGTERM
# and checks that it exits 0. Two more instances of the same daemon answer
# the suite's tests of the two 500 refusals: one with execution switched off
# ("enabled": false), one whose start-up safety check fails (its egress probe
# is the first daemon, which it can reach). Exits non-zero on any failure.
#
# --pool-off runs the main daemon with every sandbox cold (no warm
# interpreter, no pool), the other configuration the suite must pass in.
#
# CODEJAIL_NEXT_ENV_DIR, when set, gives the main daemon a second sandbox
# environment for courses "course-v1:NextX+*" (api_tests/test_environments.py).
#
# --lms-prolog sends every test's code with the LMS's prolog in front
# (api_tests/fixtures/capa): the prolog must not change what is allowed or
# denied.
#
# --without LAYER,... (testing builds, CODEJAIL_TESTING=ON) removes sandbox
# layers from the daemon and runs the suite as a sabotage test: it succeeds
# when some test_deny_* tests now fail (the deny tests can fail) and no
# test_allow_*/test_support_* test does. See api_tests/README.md.
set -u

usage() {
    echo "usage: $0 [--pool-off] [--lms-prolog] [--without LAYER[,LAYER...]] BUILD_DIR [-- PYTEST_ARGS...]" >&2
    exit 2
}

without=""
pool=""
prolog=""
while [ $# -gt 0 ]; do
    case "$1" in
        --pool-off) pool='"warm": false, "pool_size": 0, "preimport": null, '; shift ;;
        --lms-prolog) prolog=1; shift ;;
        --without) [ $# -ge 2 ] || usage; without="$2"; shift 2 ;;
        --without=*) without="${1#--without=}"; shift ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
build=$(cd "$1" 2>/dev/null && pwd) || { echo "$0: no build directory $1" >&2; exit 2; }
shift
if [ $# -gt 0 ]; then
    [ "$1" = "--" ] || usage
    shift
fi
daemon="$build/codejaild"
here=$(cd "$(dirname "$0")" && pwd)
suite="$here/../api_tests"
python=/usr/bin/python3

if [ ! -x "$daemon" ]; then
    echo "$0: $daemon does not exist (build the codejaild target first)" >&2
    exit 2
fi

# Re-run inside a fresh network namespace: whatever the sandbox or the
# suite does, nothing leaves loopback.
if [ -z "${CODEJAIL_API_TESTS_NETNS:-}" ]; then
    args=()
    [ -n "$without" ] && args+=(--without "$without")
    [ -n "$pool" ] && args+=(--pool-off)
    [ -n "$prolog" ] && args+=(--lms-prolog)
    exec unshare --net env CODEJAIL_API_TESTS_NETNS=1 /bin/bash -c \
        'ip link set lo up && exec "$@"' run-api-tests "$0" "${args[@]}" "$build" -- "$@"
fi

work=$(mktemp -d /tmp/codejail-api-tests.XXXXXX)
names=()         # instances started, by name
declare -A pids  # name -> pid (emptied once reaped)
declare -A ports # name -> port

cleanup() {
    local name pid
    for name in "${names[@]}"; do
        pid=${pids[$name]}
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Running and not yet a zombie (kill -0 also succeeds on a zombie).
alive() {
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}

fail() {
    local name
    echo "run-api-tests: FAIL: $*" >&2
    for name in "${names[@]}"; do
        if [ -s "$work/$name.log" ]; then
            echo "---- codejaild ($name) log, last 40 lines but health polls ----" >&2
            grep -v '"path": "/health/*"' "$work/$name.log" | tail -n 40 >&2
        fi
    done
    exit 1
}

free_port() {
    $python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME CONFIG_JSON [EXTRA_ARGS...]
start() {
    local name=$1 config=$2 port
    shift 2
    port=$(free_port)
    printf '%s\n' "$config" > "$work/$name.json"
    env -u PORT -u CODEJAIL_PORT -u CODEJAIL_LISTEN -u CODEJAIL_PROFILE -u CODEJAIL_ENABLED \
        -u CODEJAIL_SERVICE_URL "$canary_name=$canary_value" \
        "$daemon" --profile development --listen 127.0.0.1 --port "$port" \
        --config "$work/$name.json" "$@" > "$work/$name.log" 2>&1 &
    names+=("$name")
    pids[$name]=$!
    ports[$name]=$port
}

# wait_health NAME WANT: polls /health/ until it answers WANT (a status, or
# "any" for any HTTP answer), at most 60 s (times the scale), failing early
# if the daemon dies.
wait_health() {
    local name=$1 want=$2 pid=${pids[$1]} rc
    $python - "http://127.0.0.1:${ports[$name]}/health/" "$want" "$pid" "$((60 * scale))" \
        > "$work/$name.health" <<'EOF_POLL'
import sys, time, urllib.error, urllib.request
url, want, pid = sys.argv[1], sys.argv[2], sys.argv[3]
deadline = time.monotonic() + int(sys.argv[4])
last = "no answer"
def alive():
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(l.startswith("State:") and "Z" in l.split()[1] for l in f)
    except OSError:
        return False
while time.monotonic() < deadline:
    if not alive():
        sys.exit(3)
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    except OSError as err:
        status, body = None, str(err).encode()
    if status is not None:
        last = f"HTTP {status} {body[:300]!r}"
        if want == "any" or str(status) == want:
            print(last)
            sys.exit(0)
    time.sleep(0.1)
print(last)
sys.exit(4)
EOF_POLL
    rc=$?
    case $rc in
        0) return 0 ;;
        3) wait "$pid"; fail "codejaild ($name) exited with status $? before answering /health/" ;;
        *) fail "codejaild ($name): /health/ did not answer $want within $((60 * scale)) s" \
                "(last: $(cat "$work/$name.health"))" ;;
    esac
}

# stop NAME: SIGTERM; the daemon must exit 0 within 30 s.
stop() {
    local name=$1 pid=${pids[$1]} status
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do
        sleep 0.1
    done
    alive "$pid" && fail "codejaild ($name) did not exit within 30 s of SIGTERM"
    wait "$pid"
    status=$?
    pids[$name]=""
    [ $status -eq 0 ] || fail "codejaild ($name) exited with status $status after SIGTERM (expected 0)"
    echo "codejaild ($name) stopped cleanly (exit 0)"
}

# Under emulation (tests/vm/) code runs many times slower: the daemon's CPU
# and REALTIME limits, and the suite's own figures, are scaled by this factor.
scale=${CODEJAIL_TEST_TIME_SCALE:-1}
export CODEJAIL_API_TESTS_TIME_SCALE=$scale
scaled_limits=""
[ "$scale" = 1 ] || scaled_limits="\"limits\": {\"CPU\": $scale, \"REALTIME\": $((3 * scale))}, "

override=api-tests-long
canary_name=CJ_API_TESTS_SECRET
canary_value=$($python -c 'import secrets; print(secrets.token_hex(16))')

# Sabotage mode: the daemon's switch for removing layers.
extra=()
if [ -n "$without" ]; then
    help=$("$daemon" --help 2>&1)
    if ! printf '%s' "$help" | grep -q -- '--without'; then
        echo "run-api-tests: $daemon has no --without LAYER switch, so no layer can be removed" >&2
        echo "(a testing build, -DCODEJAIL_TESTING=ON, needs one for sabotage testing). Its usage:" >&2
        printf '%s\n' "$help" >&2
        exit 2
    fi
    IFS=, read -r -a removed <<< "$without"
    for layer in "${removed[@]}"; do
        [ -n "$layer" ] && extra+=(--without "$layer")
    done
fi

# CODEJAIL_NEXT_ENV_DIR (make environment NAME=next FROM=tests/environments/next):
# a second sandbox environment, which has PyYAML, for one course.
environments=""
if [ -n "${CODEJAIL_NEXT_ENV_DIR:-}" ]; then
    environments="\"environments\": {\"next\": {\"env_dir\": \"$CODEJAIL_NEXT_ENV_DIR\", \"pool_size\": 1}}, \"context_environments\": {\"course-v1:NextX+*\": \"next\"}, "
    export CODEJAIL_API_TESTS_ENVIRONMENT="course-v1:NextX+Api+2026=yaml"
fi

# The main instance: the profile's default limits (REALTIME 3, CPU 1) plus the
# override context the suite tests.
start main "{$pool$scaled_limits$environments\"limit_overrides\": {\"$override\": {\"REALTIME\": $((10 * scale)), \"CPU\": $((5 * scale))}}}" "${extra[@]}"
if [ -n "$without" ]; then
    # With layers removed the start-up safety check should fail; sabotage
    # testing needs a daemon that serves anyway (testing builds).
    wait_health main any
    if ! grep -q '^HTTP 200 ' "$work/main.health"; then
        fail "codejaild --without $without does not execute anything: /health/ says" \
             "$(cat "$work/main.health"). Sabotage testing needs a testing build that" \
             "keeps serving when its safety check fails because layers were switched off."
    fi
else
    wait_health main 200
fi
base="http://127.0.0.1:${ports[main]}"
if [ -z "$without" ]; then
    start disabled '{"enabled": false}'
    start misconfigured "{\"egress_probe\": \"127.0.0.1:${ports[main]}\"}"
    wait_health disabled 200
    wait_health misconfigured any
    export CODEJAIL_API_TESTS_DISABLED_URL="http://127.0.0.1:${ports[disabled]}"
    export CODEJAIL_API_TESTS_MISCONFIGURED_URL="http://127.0.0.1:${ports[misconfigured]}"
fi

echo "== api tests against $daemon at $base${without:+ without $without}${pool:+ (pool off)}"
export CODEJAIL_SERVICE_URL="$base"
export CODEJAIL_API_TESTS_OVERRIDE_CONTEXT="$override"
export CODEJAIL_API_TESTS_ENV_CANARY="$canary_name=$canary_value"
export CODEJAIL_API_TESTS_LMS_PROLOG="$prolog"
# Plain Python with the sandbox's pip-installed packages, for test_lms.py's
# comparison (Debian's are the host's own).
export CODEJAIL_API_TESTS_PLAIN_PYTHONPATH
CODEJAIL_API_TESTS_PLAIN_PYTHONPATH=$(echo "$build"/sandbox-env/usr/local/lib/python3.*/dist-packages)
# Cold sandboxes import nltk (chem) and sympy (symmath) per request: more than
# the platform's 1 CPU second on a slow host.
# The platform's read timeout (3.5 s) is for its default limits; these
# requests may take the override's REALTIME.
if [ -n "$pool" ]; then
    export CODEJAIL_API_TESTS_LMS_CONTEXT="$override" CODEJAIL_API_TESTS_LMS_READ_TIMEOUT=10
fi
if [ -z "$without" ]; then
    $python -m pytest -p no:cacheprovider -q -rfEs "$suite" "$@"
    tests=$?
else
    $python -m pytest -p no:cacheprovider -q -rfE --junitxml="$work/junit.xml" "$suite" "$@" \
        > "$work/pytest.log" 2>&1
    tail -n 1 "$work/pytest.log"
    $python - "$work/junit.xml" "$without" <<'EOF'
"""Sabotage verdict: deny tests must be able to fail, nothing else may."""
import sys
import xml.etree.ElementTree as ET

deny_failed, deny_passed, other_failed, skipped = [], [], [], []
for case in ET.parse(sys.argv[1]).iter("testcase"):
    name = case.get("name")
    bad = case.find("failure") is not None or case.find("error") is not None
    if case.find("skipped") is not None:
        skipped.append(name)
    elif name.startswith("test_deny_"):
        (deny_failed if bad else deny_passed).append(name)
    elif bad:
        other_failed.append(name)
print(f"without {sys.argv[2]}: {len(deny_failed)} deny tests fail (as they must be able to),"
      f" {len(deny_passed)} still pass (held by what is still on), {len(other_failed)}"
      f" allow/support tests fail, {len(skipped)} skipped")
for title, names in [("deny tests failing now", deny_failed),
                     ("deny tests still passing", deny_passed),
                     ("allow/support tests failing (they should not)", other_failed)]:
    if names:
        print(f"  {title}:")
        for n in names:
            print(f"    {n}")
sys.exit(0 if deny_failed and not other_failed else 1)
EOF
    tests=$?
fi

for name in "${names[@]}"; do
    stop "$name"
done

[ $tests -eq 0 ] || { echo "run-api-tests: FAIL: api tests failed" >&2; exit 1; }
echo "run-api-tests: OK"
