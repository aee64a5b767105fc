#!/usr/bin/env bash
# Run every test: unit tests (config, HA core table, API) and the
# process-level cluster tests (real etcd, real PostgreSQL, real pgboxd on
# 127.0.x.y loopback addresses). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build -p pgbox --bins
cargo nextest run --workspace --no-fail-fast "$@"
