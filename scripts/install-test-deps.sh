#!/usr/bin/env bash
# Installs what the process-level tests need on a Debian machine: PostgreSQL and
# etcd servers (used as plain binaries: the tests start their own processes),
# HAProxy (to check the router configuration pgboxd renders), pgBackRest
# (the backup tests archive to and restore from it), protoc and
# Google's protobuf definitions for etcd-client, cargo-nextest when missing,
# and Patroni's own patronictl (from PyPI, into a venv under
# /var/cache/pgbox) for the test that operates a pgbox cluster with it. The
# packages are listed in scripts/host-packages.list. Safe to run twice.
set -euo pipefail
. "$(dirname "$0")/lib/host-packages.sh"
ensure_host_packages build test
command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# appliance/tests/patronictl.rs looks for it here (PGBOX_PATRONICTL overrides).
patronictl_venv=/var/cache/pgbox/patronictl-4.1.5
if ! "$patronictl_venv/bin/patronictl" version 2>/dev/null | grep -q 4.1.5; then
	echo "==> installing patronictl 4.1.5 from PyPI into $patronictl_venv"
	rm -rf "$patronictl_venv"
	mkdir -p "$(dirname "$patronictl_venv")"
	/usr/bin/python3 -m venv "$patronictl_venv"
	"$patronictl_venv/bin/pip" install -q 'patroni[etcd3]==4.1.5' 'psycopg[binary]'
fi
echo "==> test dependencies ready: $(etcd --version | head -1); $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '); $("$patronictl_venv/bin/patronictl" version)"
