#!/usr/bin/env bash
# A python3 base image made from Debian's packages, for machines that reach Debian's mirrors
# and PyPI but no container registry (CI). Tagged with this script's hash and kept in the
# local image store, so it is built once per change of this script. Prints the image name.
#   BASE=$(deploy/base-image.sh)
set -euo pipefail
image=localhost/xintu-base:bookworm-$(sha256sum "$0" | cut -c1-12)
if podman image exists "$image"; then
    echo "$image"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
# usrmerge (and the perl it needs) only converts the tree during bootstrap; usr-is-merged
# stands in for it afterwards: 47 MB less.
mmdebstrap --mode=root --variant=minbase --format=tar --quiet \
    --include=ca-certificates,python3,python3-venv,usr-is-merged \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --customize-hook='chroot "$1" dpkg --purge usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl perl-modules-5.36 libperl5.36' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/* "$1"/usr/share/info/*' \
    bookworm "$work/rootfs.tar" "$sources" >&2
podman import --change 'CMD ["python3"]' "$work/rootfs.tar" "$image" >/dev/null
echo "$image"
