#!/usr/bin/env bash
# Fuzz the first-boot file's parser and validator and the REST API's
# request handling (fuzz/, cargo-fuzz with libFuzzer) for a bounded time per
# target: scripts/fuzz.sh [SECONDS_PER_TARGET] (default 60).
#
# Exits 0 when no target crashed; otherwise 1, after printing each crash's
# message and the file holding the input that caused it. Replay one with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# and keep it as a unit test in appliance/ once it is fixed.
#
# The committed seeds (fuzz/corpus/TARGET/) are read, never written: the
# inputs found along the way go to a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]  (a whole number of seconds, default 60)" >&2
    exit 2
fi

# libFuzzer's instrumentation needs nightly-only compiler flags.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: no nightly Rust toolchain; cargo-fuzz needs one." >&2
    echo "  install it with: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# PGBOX_FUZZ_TARGET_DIR: where the instrumented build goes (default
# fuzz/target); CI keeps it between fresh clones, like a compiler cache.
target_dir=()
[ -n "${PGBOX_FUZZ_TARGET_DIR:-}" ] && target_dir=(--target-dir "$PGBOX_FUZZ_TARGET_DIR")

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p fuzz/artifacts

started=$SECONDS
echo "== building the fuzz targets"
cargo +nightly fuzz build "${target_dir[@]}"
built=$SECONDS
echo "== built in $((built - started)) s"

crashed=()
for target in $(cargo +nightly fuzz list); do
    log="fuzz/artifacts/$target.log"
    mkdir -p "$scratch/$target" "fuzz/corpus/$target"
    echo "== $target: ${seconds} s"
    extra=()
    # Its input is a list of edits of about ten bytes each: let it reach
    # many edits at once instead of growing the length slowly.
    [[ "$target" == config_structured ]] && extra=(-len_control=0 -max_len=512)
    # -timeout: an input that takes this long counts as a hang (a crash).
    if cargo +nightly fuzz run "${target_dir[@]}" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" \
        >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
    else
        crashed+=("$target")
        echo "!! $target crashed; its output is in $log"
        grep -E "panicked at|^SUMMARY|ERROR: libFuzzer|Failing input|Test unit written to" "$log" | head -n 8 || tail -n 20 "$log"
        grep -A1 "panicked at" "$log" | tail -n 1 || true
    fi
done

echo "== fuzzed for $((SECONDS - built)) s after a $((built - started)) s build"
if ((${#crashed[@]})); then
    echo "crashed: ${crashed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "no crash"
