#!/usr/bin/env bash
# A python3 base image made from Debian's packages, for machines that reach Debian's mirrors
# and PyPI but no container registry (CI). Kept in the local image store: built once.
#   deploy/base-image.sh [IMAGE]      default localhost/xintu-base:bookworm
set -euo pipefail
image=${1:-localhost/xintu-base:bookworm}
if podman image exists "$image"; then
    exit 0
fi
rootfs=$(mktemp -d)/rootfs.tar
trap 'rm -rf "$(dirname "$rootfs")"' EXIT
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
mmdebstrap --mode=root --variant=minbase --format=tar \
    --include=ca-certificates,python3,python3-venv \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/*' \
    bookworm "$rootfs" "$sources"
podman import --change 'CMD ["python3"]' "$rootfs" "$image" >/dev/null
echo "built $image"
