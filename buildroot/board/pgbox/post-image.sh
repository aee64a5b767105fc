#!/usr/bin/env bash
# Buildroot post-image script of the pgbox image: stages the inputs of
# genimage.cfg and makes the GPT disk, the same layout as the offline
# image's (image/repart.d).
#
# Called by buildroot as: post-image.sh BINARIES_DIR
# with BUILD_DIR and HOST_DIR in the environment.
set -euo pipefail

BINARIES=${1:?usage: post-image.sh BINARIES_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
: "${BUILD_DIR:?BUILD_DIR is not set (run from buildroot)}"
: "${HOST_DIR:?HOST_DIR is not set (run from buildroot)}"

die() { printf 'post-image: error: %s\n' "$*" >&2; exit 1; }

for f in bzImage rootfs.erofs; do
	[ -f "$BINARIES/$f" ] || die "$BINARIES/$f is missing (BR2_LINUX_KERNEL, BR2_TARGET_ROOTFS_EROFS)"
done
# The config partition's README is the offline image's.
install -m 0644 "$REPO/image/config-partition/README.txt" "$BINARIES/README.txt"
# The kernel command line (also built into the kernel), for direct kernel
# boot in VMs, as image/out/cmdline.txt of the offline image.
sed -n 's/^CONFIG_CMDLINE="\(.*\)"$/\1/p' "$HERE/linux.fragment" >"$BINARIES/cmdline.txt"
[ -s "$BINARIES/cmdline.txt" ] || die "no CONFIG_CMDLINE in linux.fragment"

# genimage's own temporary directory; it copies the root there even when
# no image is filled from it, so point it at an empty one.
tmp="$BUILD_DIR/genimage.tmp"
empty_root="$BUILD_DIR/genimage.root"
rm -rf "$tmp" "$empty_root"
mkdir -p "$empty_root"
"$HOST_DIR/bin/genimage" \
	--rootpath "$empty_root" \
	--tmppath "$tmp" \
	--inputpath "$BINARIES" \
	--outputpath "$BINARIES" \
	--config "$HERE/genimage.cfg"
rm -rf "$tmp" "$empty_root"
printf 'post-image: %s\n' "$BINARIES/pgbox.img"
