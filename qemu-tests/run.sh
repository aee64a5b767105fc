#!/usr/bin/env bash
# Boots the five-node pgbox cluster from the built image under QEMU and runs
# fault scenarios against it (see qemu-tests/README.md).
#
#   qemu-tests/run.sh [--keep] [SCENARIO...|all]
#
# Builds the image first when image/out/ lacks it or it is older than its
# inputs (image/build.sh, as root).
# Results: a table on stdout, qemu-tests/out/results.json, VM logs under
# qemu-tests/out/logs/<scenario>/. Every QEMU dies with the runner.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH

# The image is (re)built when it is missing or older than any of its inputs:
# pgbox's sources, the units, the image recipe. PGBOX_VMTEST_REUSE_IMAGE=1
# boots what is there.
stale=""
for f in pgbox.qcow2 vmlinuz initrd.img cmdline.txt; do
	[ -f "$REPO/image/out/$f" ] || { stale="image/out/$f is missing"; break; }
done
if [ -z "$stale" ] && [ "${PGBOX_VMTEST_REUSE_IMAGE:-0}" != 1 ]; then
	newer=$(cd "$REPO" && find appliance/src appliance/Cargo.toml Cargo.lock systemd image \
		\( -path image/out -o -path image/cache -o -path image/smoke \) -prune -o \
		-type f -newer image/out/pgbox.qcow2 -print -quit)
	[ -z "$newer" ] || stale="$newer is newer than the image"
fi
if [ -n "$stale" ]; then
	echo "$stale: building the image (image/build.sh --no-raw)" >&2
	bash "$REPO/image/build.sh" --no-raw
fi
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "missing ${need[*]}: install them (Debian) or run as root" >&2; exit 1; }
	echo "installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

(cd "$REPO" && cargo build -q -p pgbox-vmtest)
exec "$REPO/target/debug/pgbox-vmtest" "$@"
