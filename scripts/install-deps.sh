#!/bin/sh
# Installs whatever Debian packages from the given lists are missing.
# Usage: scripts/install-deps.sh LIST...   (needs root when something is missing)
set -eu
missing=""
for list in "$@"; do
    for pkg in $(grep -v '^[[:space:]]*#' "$list"); do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing="$missing $pkg"
        fi
    done
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages and not root; run: sudo apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
