#!/bin/sh
# Runs the fault-injection tests (tests/faults/) against the daemon of a
# build, inside new network and mount namespaces (loopback only, up; mounts
# the tests make stay there), as root.
#
# usage: tests/run-fault-tests.sh BUILD_DIR [PYTEST_ARGS...]
#
# CODEJAIL_ENV_DIR: the sandbox environment the build was made for
# (default BUILD_DIR/sandbox-env); one test bind-mounts it elsewhere.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [PYTEST_ARGS...]" >&2; exit 2; }
build=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
echo "== fault-injection tests against $build"
CODEJAIL_BUILD="$build" CODEJAIL_ENV_DIR="${CODEJAIL_ENV_DIR:-$build/sandbox-env}" \
    unshare --net --mount sh -c \
    'ip link set lo up && exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfEs "$@"' \
    run-fault-tests "$here/faults" "$@"
