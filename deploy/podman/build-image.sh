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

# shellcheck disable=SC2086
$podman build --format docker --network host --pull=never \
    --build-arg BASE_IMAGE="$base" ${BUILD_ARGS:-} \
    -f "$here/Containerfile" -t "$image" "$here"
echo "build-image: built $image"
