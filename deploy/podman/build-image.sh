#!/bin/bash
# Builds the codejail container image from the Containerfile.
#
# usage: deploy/podman/build-image.sh [IMAGE]        (default codejail:latest)
#
# Environment:
#   BASE_IMAGE  Debian 12 image both stages start from. Default
#               localhost/codejail-base:bookworm, which is made here with
#               debootstrap (deploy/podman/make-base-image.sh) when it is not
#               in podman's storage yet: no image registry needed. Where one
#               is reachable: BASE_IMAGE=docker.io/library/debian:bookworm-slim
#   PODMAN      podman command (default: podman)
#   BUILD_ARGS  extra arguments for `podman build`
#   PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX
#               where pip gets the Open edX packages Debian lacks for the
#               sandbox environment (default PyPI); a PIP_FIND_LINKS that is
#               a local folder of wheels is mounted into the build
#   SANDBOX_REQUIREMENTS
#               more pip requirements files for the environment, paths in
#               this repository separated by spaces
#   EXTRA_ENVIRONMENTS
#               further sandbox environments, NAME=DIR pairs separated by
#               spaces (DIR in this repository; see the Containerfile)
#
# The build's own network is the host's (--network host): apt-get in the
# build reaches the Debian mirror without slirp4netns or a tun device; the
# build runs only this repository's steps.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
image=${1:-codejail:latest}
base=${BASE_IMAGE:-localhost/codejail-base:bookworm}
podman=${PODMAN:-podman}

if ! $podman image exists "$base"; then
    case "$base" in
    localhost/*) "$here/deploy/podman/make-base-image.sh" "$base" ;;
    *) $podman pull "$base" ;;
    esac
fi

pip_args=()
if [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "$PIP_FIND_LINKS" ]; then
    pip_args+=(--volume "$(cd "$PIP_FIND_LINKS" && pwd):/run/codejail-wheels:ro"
               --build-arg PIP_FIND_LINKS=/run/codejail-wheels)
elif [ -n "${PIP_FIND_LINKS:-}" ]; then
    pip_args+=(--build-arg PIP_FIND_LINKS="$PIP_FIND_LINKS")
fi
for v in PIP_INDEX_URL PIP_NO_INDEX SANDBOX_REQUIREMENTS EXTRA_ENVIRONMENTS; do
    [ -n "${!v:-}" ] && pip_args+=(--build-arg "$v=${!v}")
done

# shellcheck disable=SC2086
$podman build --format docker --network host --pull=never \
    --build-arg BASE_IMAGE="$base" "${pip_args[@]}" ${BUILD_ARGS:-} \
    -f "$here/Containerfile" -t "$image" "$here"
echo "build-image: built $image"
