#!/bin/bash
# Makes a minimal Debian 12 (bookworm) base image without an image registry:
# debootstrap --variant=minbase from the Debian mirror this machine's apt uses,
# packed as a tarball, then `podman import`ed as IMAGE.
#
# usage: deploy/podman/make-base-image.sh [--tar-only] IMAGE [TARBALL]
#
#   IMAGE    name to import as (default localhost/codejail-base:bookworm)
#   TARBALL  where the root file system tarball is kept (default
#            build/image/debian-bookworm-minbase.tar); reused when present,
#            so a non-root user can import what root debootstrapped.
#   --tar-only  make the tarball and stop (CI: root makes it, the rootless
#            user imports it).
#
# Making the tarball needs root and `apt-get install debootstrap`; importing
# it needs only podman. Environment: DEBIAN_MIRROR overrides the mirror.
# Where a registry is reachable, skip all this and build the image with
# BASE_IMAGE=docker.io/library/debian:bookworm-slim instead.
set -euo pipefail

tar_only=0
if [ "${1:-}" = "--tar-only" ]; then tar_only=1; shift; fi
image=${1:-localhost/codejail-base:bookworm}
here=$(cd "$(dirname "$0")/../.." && pwd)
tarball=${2:-$here/build/image/debian-bookworm-minbase.tar}

# The first Debian archive URI apt is configured with (deb822 or one-line
# format), for the "debian" archive (not security, not third-party repos).
detect_mirror() {
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
          grep -E '/debian/?$' | head -n 1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
              awk '{for (i = 2; i <= NF; i++) if ($i !~ /^\[/) {print $i; exit}}' |
              grep -E '/debian/?$' | head -n 1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ ! -s "$tarball" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "make-base-image: $tarball does not exist and making it needs root (debootstrap)." >&2
        echo "  Run once: sudo $0 --tar-only $image $tarball" >&2
        echo "  or, where an image registry is reachable, build with" >&2
        echo "  BASE_IMAGE=docker.io/library/debian:bookworm-slim." >&2
        exit 1
    fi
    command -v debootstrap >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
    }
    mirror=${DEBIAN_MIRROR:-$(detect_mirror)}
    security=${mirror%/debian}/debian-security
    root=$(mktemp -d "${TMPDIR:-/var/tmp}/codejail-base.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    echo "make-base-image: debootstrap --variant=minbase bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$root" "$mirror" > "$root.log" 2>&1 || {
        tail -n 30 "$root.log" >&2
        exit 1
    }
    rm -f "$root.log"
    # The same archives as a stock Debian image: release, updates, security.
    rm -f "$root/etc/apt/sources.list"
    cat > "$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    # What Debian's official images do: no recommends, no caches, no docs.
    cat > "$root/etc/apt/apt.conf.d/90codejail-image" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
APT
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
           "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
    : > "$root/etc/machine-id"
    mkdir -p "$(dirname "$tarball")"
    # Numeric owners, no host-specific extended attributes.
    tar --numeric-owner --xattrs --xattrs-include='security.capability' -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    echo "make-base-image: wrote $tarball ($(du -h "$tarball" | cut -f1))"
fi

[ $tar_only = 1 ] && exit 0
podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
       --message "debootstrap --variant=minbase bookworm" "$tarball" "$image"
echo "make-base-image: imported $image"
