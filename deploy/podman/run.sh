#!/bin/bash
# Runs the codejail image with Podman (rootless or rootful), locked down, with
# its port published on 127.0.0.1 only. `make podman-run` and
# tests/run-container-api-tests.sh both start it through this script, so
# the flag set below is the one that is tested.
#
# usage: deploy/podman/run.sh [options] [IMAGE] [-- CODEJAILD_ARGS...]
#   -d, --detach        run in the background (default: foreground, Ctrl-C stops)
#   --name NAME         container name (default codejail)
#   --port PORT         host port on 127.0.0.1 (default 8080)
#   --config FILE       mount FILE as the daemon's configuration
#   -e VAR=VALUE        extra environment for the container (repeatable)
#   --disabled          do not set CODEJAIL_ENABLED=1 (execution off)
#   --omit-unmask       leave /proc/sys read-only (tests only: shows that the
#                       start-up safety check catches the missing setting)
#   --keep              no --rm (tests: read the exit status after a stop)
# IMAGE defaults to codejail:latest.
#
# The flags, and why each is there:
#   --user 47321:47321                 the image's non-root user (fixed uid)
#   --cap-drop ALL                     no capabilities: the sandbox helper runs
#                                      unprivileged and maps one id per sandbox
#   --security-opt no-new-privileges   nothing can regain privileges by exec
#   --read-only --read-only-tmpfs=false
#                                      read-only root, and no writable tmpfs
#                                      either: the service writes no file
#   --security-opt seccomp=deploy/seccomp/codejail.json
#                                      Podman's default profile refuses
#                                      sethostname without CAP_SYS_ADMIN; this
#                                      one allows what building a sandbox needs
#                                      (namespaces, mount API, pivot_root,
#                                      Landlock) and drops what it does not
#   --security-opt unmask=/proc/sys    /proc/sys writable where the kernel
#                                      allows it: the helper closes each
#                                      sandbox's user namespace through
#                                      /proc/sys/user/max_*_namespaces (only
#                                      its own namespace's root may write them)
#   -p 127.0.0.1:PORT:8080             loopback only
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
podman=${PODMAN:-podman}

rm=(--rm) detach=() name=codejail port=8080 config="" envs=() enabled=1 unmask=1 image=codejail:latest
while [ $# -gt 0 ]; do
    case "$1" in
    -d | --detach) detach=(-d); shift ;;
    --name) name=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --config) config=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    -e) envs+=(-e "$2"); shift 2 ;;
    --disabled) enabled=0; shift ;;
    --omit-unmask) unmask=0; shift ;;
    --keep) rm=(); shift ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) image=$1; shift ;;
    esac
done

flags=(
    --user 47321:47321
    --cap-drop ALL
    --security-opt no-new-privileges
    --read-only --read-only-tmpfs=false
    --security-opt "seccomp=$here/deploy/seccomp/codejail.json"
)
[ $unmask = 1 ] && flags+=(--security-opt unmask=/proc/sys)
flags+=(-p "127.0.0.1:$port:8080")

args=()
if [ -n "$config" ]; then
    flags+=(-v "$config:/etc/codejail/codejail.json:ro")
    args+=(--config /etc/codejail/codejail.json)
fi
[ $enabled = 1 ] && envs+=(-e CODEJAIL_ENABLED=1)
# Podman runs HEALTHCHECKs from systemd timers; without systemd it can only
# complain about it, so the check is left off there.
[ -d /run/systemd/system ] || flags+=(--no-healthcheck)

exec $podman run "${rm[@]}" "${detach[@]}" --name "$name" "${flags[@]}" "${envs[@]}" \
    "$image" "${args[@]}" "$@"
