#!/bin/bash
# Runs in the VM (tests/vm/init), as root, with AppArmor and cgroup2 on:
#
#   unloaded     `codejail check` before the sandbox's AppArmor profile is
#                loaded must refuse, saying why (apparmor failed)
#   load_profile the profile loaded (apparmor_parser) and listed in enforce mode
#   check        `codejail check` must say safe
#   api          api_tests/ against codejaild of the release build
#   leak         tests/integ_leak.c of the testing build (cgroup2 here)
#   integration  tests/integration against the testing build (every allow
#                and deny row, cold and warm, the layer ablation, and the
#                AppArmor and cgroup tests that need this kernel), last as
#                the longest
#
# usage: guest.sh REPO BUILD TEST_BUILD STEPS [PYTEST_ARGS]
# (STEPS: all, or a comma list; PYTEST_ARGS: more for the integration step)
# Exits non-zero when any step fails; every step runs regardless.
set -u
repo=$1 build=$2 test_build=$3 steps=$4 pytest_args=${5:-}
profile="$repo/apparmor/codejail-sandbox"
# Emulation runs code 10 to 30 times slower than this host, and more when
# the host is busy: the guest counts the time its virtual CPU was not run as
# CPU time of whatever it was running. Tests scale their CPU and REALTIME
# limits by this factor (the product never does).
export CODEJAIL_TEST_TIME_SCALE=${CODEJAIL_TEST_TIME_SCALE:-20}
export PYTHONDONTWRITEBYTECODE=1
# Every AppArmor denial reaches the kernel log, where the tests look for it.
echo 0 > /proc/sys/kernel/printk_ratelimit

failed=()
# Every run but `unloaded` alone needs the profile: load_profile always runs.
want() { [ "$steps" = all ] || [ "$1" = load_profile ] || [[ ",$steps," == *",$1,"* ]]; }
step() {
    local name=$1 start=$SECONDS rc
    shift
    want "$name" || return 0
    echo "== vm step $name"
    "$@"
    rc=$?
    echo "== vm step $name: $([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)") in $((SECONDS - start)) s"
    [ $rc -eq 0 ] || failed+=("$name")
}

unloaded() {
    local out rc
    out=$("$build/codejail" check --json)
    rc=$?
    echo "$out"
    [ $rc -eq 1 ] || { echo "check exited $rc without the profile (want 1)"; return 1; }
    /usr/bin/python3 - "$out" <<'PY'
import json, sys
layer = json.loads(sys.argv[1])["layers"]["apparmor"]
assert layer["state"] == "failed", layer
assert "codejail-sandbox" in layer["detail"] and "not loaded" in layer["detail"], layer
PY
}

load_profile() {
    apparmor_parser -r -K "$profile" || return 1
    grep -x 'codejail-sandbox (enforce)' /sys/kernel/security/apparmor/profiles
}

# Warm: a cold sandbox's interpreter start alone can take the 1 CPU-second
# default under emulation, and `check` runs with the product's limits.
check() {
    "$build/codejail" check --warm
}

# The testing build, which has every row and the layer switches; the release
# build runs api_tests here, and the integration suite on the host. One
# worker per virtual CPU: each test's processes run one at a time.
integration() {
    PYTEST_ADDOPTS="-n $(nproc) --durations=25 $pytest_args" \
        "$repo/tests/run-integration.sh" "$test_build"
}

leak() {
    CODEJAIL_BINARY_DIR="$test_build" unshare --net \
        sh -c 'ip link set lo up && exec "$0"/tests/integ_leak' "$test_build"
}

api() {
    "$repo/tests/run-api-tests.sh" "$build"
}

echo "guest: Linux $(uname -r), LSMs $(cat /sys/kernel/security/lsm)," \
     "cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
step unloaded unloaded
step load_profile load_profile
step check check
step api api
step leak leak
step integration integration

if [ ${#failed[@]} -gt 0 ]; then
    echo "vm: FAILED: ${failed[*]}"
    exit 1
fi
echo "vm: all steps passed"
