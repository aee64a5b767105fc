#!/usr/bin/env bash
# Benchmark: pgbox against Patroni on the same loopback cluster shape, same
# write workload through HAProxy, same faults (see docs/benchmarks.md).
#   bash bench/run.sh [--quick] [--reps N] [--idle SECS]
# --quick: pgbox only (debug build), one repetition, 10 s idle window; exits
# non-zero when a scenario does not complete. The full run also installs Patroni from PyPI
# into bench/.venv and rewrites docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
venv=$root/bench/.venv
quick=0
for a in "$@"; do [ "$a" = --quick ] && quick=1; done
# A quick run (CI) must not overwrite the last comparison's results.
[ $quick = 1 ] && out=$out/quick
mkdir -p "$out"

# Real etcd, PostgreSQL and HAProxy, and Debian's python3-venv for Patroni
# (scripts/host-packages.list); the packaged services never start.
. "$root/scripts/lib/host-packages.sh"
ensure_host_packages build bench

if [ $quick = 0 ]; then
    # Debian's interpreter, not one under /root: Patroni runs as `postgres`,
    # which must be able to execute it.
    if ! runuser -u postgres -- "$venv/bin/patroni" --version >/dev/null 2>&1; then
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install -q 'patroni[etcd3]' psycopg2-binary matplotlib
    fi
fi

# Quick mode keeps the benchmark from rotting (CI): debug binaries, which
# the test run has already built. The comparison uses release binaries.
if [ $quick = 1 ]; then
    profile=debug
    nice cargo build -q -p pgbox --bins
    nice cargo build -q -p pgbox-bench
else
    profile=release
    nice cargo build -q --release -p pgbox
    nice cargo build -q --release -p pgbox-bench
fi

bench_pid=
cleanup() {
    if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
        kill -TERM "$bench_pid" 2>/dev/null || true
        sleep 2
        kill -KILL "$bench_pid" 2>/dev/null || true
    fi
    # PostgreSQL servers that Patroni detached from its own process tree
    # outlive a killed runner: end them by the pids in their pid files.
    if [ -n "$bench_pid" ]; then
        for f in /tmp/pgbox-tests/bench-*-"$bench_pid"/*/data/postmaster.pid \
                 /tmp/pgbox-tests/bench-*-"$bench_pid"/*/postgres/postmaster.pid; do
            [ -f "$f" ] || continue
            pid=$(head -n1 "$f")
            case $pid in '' | *[!0-9]*) continue ;; esac
            pkill -KILL -P "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
"${CARGO_TARGET_DIR:-target}/$profile/pgbox-bench" --out "$out" --venv "$venv" "$@" 2>&1 | tee "$out/run.log" &
# The pid of the runner itself, not of tee.
sleep 1
bench_pid=$(pgrep -n -x pgbox-bench -P $$ 2>/dev/null || pgrep -n -x pgbox-bench || true)
rc=0
wait %1 || rc=$?
echo "benchmark finished in $(( $(date +%s) - start )) s"

py=/usr/bin/python3
[ -x "$venv/bin/python" ] && py=$venv/bin/python
doc=()
[ $quick = 0 ] && doc=(--doc "$root/docs/benchmarks.md" --command "bash bench/run.sh $*")
"$py" bench/report.py "$out/results.json" --out "$out" "${doc[@]}" || rc=1
exit $rc
