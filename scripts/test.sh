#!/usr/bin/env bash
# Runs every test, installing what each stage needs first (run as root on
# Debian 12):
#
#   scripts/test.sh           everything below
#   scripts/test.sh --quick   stages 1-4 only (no image, no VMs): a few minutes
#
#   1. unit tests (config, HA core tables, simulator seeds, API) and the
#      process-level cluster tests (real etcd, real PostgreSQL, real pgboxd on
#      127.0.x.y loopback addresses)
#   2. the benchmark runner in quick mode (pgbox only, one repetition)
#   3. checks of the buildroot tree that need no buildroot
#   4. bounded fuzzing of the first-boot parser and the API's request parsing
#   5. the image, built from Debian packages
#   6. the image booted alone in QEMU: direct kernel boot, a bad first-boot
#      file, and UEFI (OVMF) from the disk itself
#   7. the five-VM cluster: bring-up, primary power-off, rejoin, switchover,
#      frozen primary
#
# Extra arguments after `--` go to cargo nextest (stage 1).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH

quick=0
nextest_args=()
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--) shift; nextest_args=("$@"); break ;;
	-h | --help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "scripts/test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

started=$(date +%s)
timings=()
stage() {
	local name=$1 t0
	shift
	echo
	echo "==> [$(($(date +%s) - started))s] $name"
	t0=$(date +%s)
	"$@"
	timings+=("$(printf '%-28s %5ss' "$name" "$(($(date +%s) - t0))")")
}

unit_and_process_tests() {
	bash scripts/install-test-deps.sh
	cargo build -p pgbox --bins
	cargo nextest run --workspace --no-fail-fast "${nextest_args[@]}"
}

buildroot_checks() {
	bash buildroot/check-offline.sh
}

fuzz_bounded() {
	# libFuzzer needs a nightly compiler; a machine without one cannot fetch
	# it (only crates.io is reachable), so the stage says so loudly and the
	# rest of the tests still run.
	if ! rustup run nightly rustc --version >/dev/null 2>&1; then
		echo "SKIPPED: no nightly Rust toolchain on this machine (rustup toolchain install nightly)"
		return 0
	fi
	bash scripts/fuzz.sh "${PGBOX_FUZZ_SECONDS:-30}"
}

smoke_tests() {
	bash image/smoke-test.sh
	bash image/smoke-test.sh --bad-config
	bash image/smoke-test.sh --uefi
}

stage "unit and process tests" unit_and_process_tests
stage "benchmark (quick)" bash bench/run.sh --quick
stage "buildroot tree checks" buildroot_checks
stage "fuzzing (bounded)" fuzz_bounded
if [ "$quick" -eq 0 ]; then
	stage "image build" bash image/build.sh
	stage "image smoke tests" smoke_tests
	stage "five-VM cluster" bash qemu-tests/run.sh bring-up primary-poweroff rejoin switchover freeze
fi

echo
echo "==> all tests passed in $(($(date +%s) - started))s"
printf '    %s\n' "${timings[@]}"
