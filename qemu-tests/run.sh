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
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 is missing (Debian: qemu-system-x86)" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "qemu-img is missing (Debian: qemu-utils)" >&2; exit 1; }

(cd "$REPO" && cargo build -q -p pgbox-vmtest)
exec "$REPO/target/debug/pgbox-vmtest" "$@"
