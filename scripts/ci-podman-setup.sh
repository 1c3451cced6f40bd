#!/bin/bash
# Prepares a CI machine to run the codejail image under rootless Podman, and
# runs commands there as the unprivileged CI user. Host quirks live here, not in
# the user's instructions (README "Deployment").
#
#   scripts/ci-podman-setup.sh setup          (root) install Podman, create the
#                                             CI user with subordinate ids, and
#                                             work around this host's quirks
#   scripts/ci-podman-setup.sh run CMD...     (root) run CMD as the CI user, in a
#                                             copy of this work tree that the
#                                             user owns (~/codejail)
#
# Environment: CODEJAIL_CI_USER (default codejail-ci).
#
# The quirks, each checked before it is worked around:
#   - crun (Podman's default runtime on Debian) fails on some hosts' cgroup
#     layout: use runc.
#   - Podman sets the container's NOFILE/NPROC limits above what a process
#     without CAP_SYS_RESOURCE may raise them to (runc then fails with
#     "error setting rlimits"): default_ulimits no higher than this shell's
#     hard limits.
#   - no systemd: cgroupfs as cgroup manager, events to a file, and an
#     XDG_RUNTIME_DIR made by hand.
#   - rootless networking (slirp4netns) opens /dev/net/tun as the user: the
#     device must be readable and writable by it.
#   - rootless storage: native overlay where the kernel allows it for
#     unprivileged users, else fuse-overlayfs, else vfs.
set -euo pipefail
user=${CODEJAIL_CI_USER:-codejail-ci}
root=$(cd "$(dirname "$0")/.." && pwd)
conf=/etc/containers/containers.conf.d/50-codejail-ci.conf

need_root() {
    [ "$(id -u)" = 0 ] || { echo "ci-podman-setup: must run as root" >&2; exit 2; }
}

# Runs "$@" as the CI user with the environment rootless Podman wants.
as_user() {
    local uid home
    uid=$(id -u "$user")
    home=$(getent passwd "$user" | cut -d: -f6)
    runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 \
        XDG_RUNTIME_DIR="/run/user/$uid" XDG_CONFIG_HOME="$home/.config" \
        XDG_DATA_HOME="$home/.local/share" PYTHONDONTWRITEBYTECODE=1 \
        ${CI:+CI="$CI"} "$@"
}

setup() {
    need_root
    local missing="" pkg
    for pkg in podman uidmap slirp4netns fuse-overlayfs runc debootstrap; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "ci-podman-setup: installing$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing > /dev/null
    fi

    # The CI user, with 65536 subordinate uids and gids.
    if ! id "$user" > /dev/null 2>&1; then
        useradd --create-home --shell /bin/bash "$user"
    fi
    local f
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        if ! grep -q "^$user:" "$f"; then
            # The first free 65536-id block from 100000 up.
            local start
            start=$(awk -F: 'BEGIN {m = 100000} {e = $2 + $3; if (e > m) m = e} END {print m}' "$f")
            echo "$user:$start:65536" >> "$f"
        fi
    done
    local uid home
    uid=$(id -u "$user")
    home=$(getent passwd "$user" | cut -d: -f6)
    install -d -m 0700 -o "$user" -g "$user" "/run/user/$uid"

    # Runtime, ulimits, no systemd.
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
    [ "$nproc" = unlimited ] || [ "$nproc" -gt 16384 ] && nproc=16384
    mkdir -p "$(dirname "$conf")"
    {
        echo "# Written by scripts/ci-podman-setup.sh: this CI host's quirks."
        echo "[containers]"
        echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
        echo "[engine]"
        echo "runtime = \"runc\""
        if [ ! -d /run/systemd/system ]; then
            echo "cgroup_manager = \"cgroupfs\""
            echo "events_logger = \"file\""
        fi
    } > "$conf"

    # Rootless networking.
    if [ -c /dev/net/tun ] && ! as_user test -r /dev/net/tun -a -w /dev/net/tun; then
        chmod 0666 /dev/net/tun
    fi

    # Rootless storage driver: the first that works.
    local storage="$home/.config/containers/storage.conf" driver
    as_user mkdir -p "$home/.config/containers"
    for driver in keep overlay fuse-overlayfs vfs; do
        if [ $driver = keep ]; then
            # Already set up by an earlier run, and working: keep its images.
            [ -s "$storage" ] && as_user podman info > /dev/null 2>&1 && break
            continue
        fi
        case $driver in
        overlay) printf '[storage]\ndriver = "overlay"\n' ;;
        fuse-overlayfs) printf '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n' ;;
        vfs) printf '[storage]\ndriver = "vfs"\n' ;;
        esac | as_user tee "$storage" > /dev/null
        as_user podman system reset --force > /dev/null 2>&1 || true
        if as_user podman info > /dev/null 2>&1 &&
           as_user podman info --format '{{.Store.GraphDriverName}}' > /dev/null 2>&1; then
            break
        fi
    done
    as_user podman info --format \
        'ci-podman-setup: user {{.Host.Security.Rootless}} rootless, runtime {{.Host.OCIRuntime.Name}}, storage {{.Store.GraphDriverName}}, cgroups {{.Host.CgroupsVersion}} ({{.Host.CgroupManager}}), network {{.Host.NetworkBackend}}'
    echo "ci-podman-setup: $user ($uid), subuids $(grep "^$user:" /etc/subuid | cut -d: -f2-), $conf"
}

run() {
    need_root
    id "$user" > /dev/null 2>&1 || setup
    local home
    home=$(getent passwd "$user" | cut -d: -f6)
    # A copy the user owns: the work tree may sit where the user cannot read
    # or write (a root-owned clone).
    rm -rf "$home/codejail"
    as_user mkdir -p "$home/codejail"
    tar -C "$root" --exclude=./.git --exclude='./build*' -cf - . | as_user tar -C "$home/codejail" -xf -
    # The base image's root file system, made by root with debootstrap.
    if [ -s "$root/build/image/debian-bookworm-minbase.tar" ]; then
        as_user mkdir -p "$home/codejail/build/image"
        as_user sh -c 'cat > "$1"' sh "$home/codejail/build/image/debian-bookworm-minbase.tar" \
            < "$root/build/image/debian-bookworm-minbase.tar"
    fi
    # pip's settings for the image's sandbox environment (CI's wheelhouse, an
    # operator's mirror) pass through; a local folder of wheels is copied
    # where the user can read it.
    local pass=() v
    if [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "$PIP_FIND_LINKS" ]; then
        rm -rf "$home/wheelhouse"
        as_user mkdir -p "$home/wheelhouse"
        tar -C "$PIP_FIND_LINKS" -cf - . | as_user tar -C "$home/wheelhouse" -xf -
        pass+=(PIP_FIND_LINKS="$home/wheelhouse")
    elif [ -n "${PIP_FIND_LINKS:-}" ]; then
        pass+=(PIP_FIND_LINKS="$PIP_FIND_LINKS")
    fi
    for v in PIP_INDEX_URL PIP_NO_INDEX CODEJAIL_REQUIRE_OPENEDX; do
        [ -n "${!v:-}" ] && pass+=("$v=${!v}")
    done
    cd "$home/codejail"
    as_user env "${pass[@]}" "$@"
}

case "${1:-}" in
setup) setup ;;
run) shift; [ $# -gt 0 ] || { echo "usage: $0 run CMD..." >&2; exit 2; }; run "$@" ;;
*) echo "usage: $0 setup | run CMD..." >&2; exit 2 ;;
esac
