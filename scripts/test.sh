#!/usr/bin/env bash
# Runs every test, installing what each stage needs first (run as root on
# Debian 12):
#
#   scripts/test.sh           everything below
#   scripts/test.sh --quick   stages 0-4 only (no image, no VMs): a few minutes
#
#   0. cargo fmt --check and cargo clippy -D warnings (seconds)
#   1. unit tests (config, HA core tables, simulator seeds, API) and the
#      process-level cluster tests (real etcd, real PostgreSQL, real pgboxd on
#      127.0.x.y loopback addresses)
#   2. the benchmark runner in quick mode (pgbox only, one repetition)
#   3. checks of the buildroot tree that need no buildroot
#   4. bounded fuzzing of the first-boot parser and the API's request parsing
#   5. the image, built from Debian packages (skipped when image/out/ is
#      complete and newer than every source, e.g. just built by
#      qemu-tests/run.sh)
#   6. the image booted alone in QEMU: direct kernel boot, a bad first-boot
#      file, and UEFI (OVMF) from the disk itself
#   7. the five-VM cluster: bring-up, primary power-off, rejoin, switchover,
#      frozen primary, paused primary (those that qemu-tests/out/results.json shows passed
#      on the image now in image/out/, e.g. by qemu-tests/run.sh just
#      before, are not run again; PGBOX_FORCE_VMS=1 runs them anyway)
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
	-h | --help) sed -n '2,27p' "$0"; exit 0 ;;
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

REPO=$PWD
. scripts/lib/image-state.sh
vm_scenarios=(bring-up primary-poweroff rejoin switchover freeze pause)

lint() {
	# clippy compiles etcd-client, which needs protoc and its includes.
	bash scripts/install-test-deps.sh
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
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

image_build() {
	local stale
	stale=$(image_stale_reason raw)
	if [ -z "$stale" ]; then
		echo "image/out/ is complete and newer than its sources: not rebuilt"
		return 0
	fi
	echo "$stale: building"
	bash image/build.sh
}

five_vms() {
	local -a todo
	if [ "${PGBOX_FORCE_VMS:-0}" = 1 ]; then
		todo=("${vm_scenarios[@]}")
	else
		read -ra todo <<<"$(vm_scenarios_not_passed "${vm_scenarios[@]}")"
	fi
	if [ ${#todo[@]} -eq 0 ]; then
		echo "qemu-tests/out/results.json: ${vm_scenarios[*]} passed on this image already (qemu-tests/run.sh): not run again; PGBOX_FORCE_VMS=1 reruns them"
		return 0
	fi
	bash qemu-tests/run.sh "${todo[@]}"
}

stage "format and lints" lint
stage "unit and process tests" unit_and_process_tests
stage "benchmark (quick)" bash bench/run.sh --quick
stage "buildroot tree checks" buildroot_checks
stage "fuzzing (bounded)" fuzz_bounded
if [ "$quick" -eq 0 ]; then
	stage "image build" image_build
	stage "image smoke tests" smoke_tests
	stage "five-VM cluster" five_vms
fi

echo
echo "==> all tests passed in $(($(date +%s) - started))s"
printf '    %s\n' "${timings[@]}"
