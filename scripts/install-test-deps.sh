#!/usr/bin/env bash
# Installs what the process-level tests need on a Debian machine: PostgreSQL and
# etcd servers (used as plain binaries: the tests start their own processes),
# HAProxy (to check the router configuration pgboxd renders), protoc and
# Google's protobuf definitions for etcd-client, and cargo-nextest when
# missing. The packages are listed in scripts/host-packages.list. Safe to run
# twice.
set -euo pipefail
. "$(dirname "$0")/lib/host-packages.sh"
ensure_host_packages build test
command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
echo "==> test dependencies ready: $(etcd --version | head -1); $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
