#!/usr/bin/env bash
# Boots the five-node pgbox cluster from the built image under QEMU and runs
# fault scenarios against it (see qemu-tests/README.md).
#
#   qemu-tests/run.sh [--keep] [SCENARIO...|all]
#
# Installs QEMU (scripts/host-packages.list) and builds the image first when
# image/out/ lacks it or it is older than its inputs (image/build.sh, as
# root). Results: a table and a summary on stdout,
# qemu-tests/out/results.json, VM logs under qemu-tests/out/logs/<scenario>/.
# Every QEMU dies with the runner.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH
started=$(date +%s)
stage() { printf '==> [%4ss] %s\n' "$(($(date +%s) - started))" "$*"; }

case " $* " in *" -h "* | *" --help "*) sed -n '2,11p' "$0"; exit 0 ;; esac

stage "host tools (QEMU, OVMF, curl, psql; protoc for building the harness)"
. "$REPO/scripts/lib/host-packages.sh"
ensure_host_packages vm build || { echo "qemu-tests/run.sh: the host tools above are missing" >&2; exit 1; }

# The image is (re)built when it is missing or older than any of its inputs:
# pgbox's sources, the units, the image recipe. PGBOX_VMTEST_REUSE_IMAGE=1
# boots what is there.
. "$REPO/scripts/lib/image-state.sh"
stale=$(image_stale_reason vm)
if [ -n "$stale" ]; then
	stage "image: $stale; building it (image/build.sh)"
	# The flashable image too (PGBOX_IMAGE_NO_RAW=1 skips it): then the
	# test command finds a complete, current image and builds nothing.
	raw_opt=()
	[ "${PGBOX_IMAGE_NO_RAW:-0}" = 1 ] && raw_opt=(--no-raw)
	bash "$REPO/image/build.sh" "${raw_opt[@]}"
else
	stage "image: image/out/ is current"
fi

stage "building the harness (pgbox-vmtest)"
(cd "$REPO" && cargo build -q -p pgbox-vmtest)
stage "five VMs: ${*:-the default scenarios}"
rc=0
"${CARGO_TARGET_DIR:-$REPO/target}/debug/pgbox-vmtest" "$@" || rc=$?
stage "finished (exit $rc)"
exit "$rc"
