#!/usr/bin/env bash
# Boots the five-node pgbox cluster from the built image under QEMU and runs
# fault scenarios against it (see qemu-tests/README.md).
#
#   qemu-tests/run.sh [--keep] [SCENARIO...|all]
#
# Builds the image first when image/out/ lacks it (image/build.sh, as root).
# Results: a table on stdout, qemu-tests/out/results.json, VM logs under
# qemu-tests/out/logs/<scenario>/. Every QEMU dies with the runner.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH

for f in pgbox.qcow2 vmlinuz initrd.img cmdline.txt; do
	if [ ! -f "$REPO/image/out/$f" ]; then
		echo "image/out/$f is missing: building the image" >&2
		bash "$REPO/image/build.sh" --no-raw
		break
	fi
done
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
