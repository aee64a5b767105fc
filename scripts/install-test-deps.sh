#!/usr/bin/env bash
# Installs what the process-level tests need on a Debian machine: PostgreSQL and
# etcd servers (used as plain binaries: the tests start their own processes),
# HAProxy (to check the router configuration pgboxd renders), protoc for
# etcd-client, and cargo-nextest when missing. Safe to run twice.
set -euo pipefail
need=()
command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/descriptor.proto ] || need+=(protobuf-compiler libprotobuf-dev)
command -v etcd >/dev/null || need+=(etcd-server etcd-client)
ls /usr/lib/postgresql/*/bin/pg_rewind >/dev/null 2>&1 || need+=(postgresql postgresql-contrib)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || need+=(haproxy)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need[*]}"
  # Debian's packages start their services and create a default cluster at
  # install time; the tests run their own processes, so refuse both.
  mkdir -p /etc/postgresql-common
  grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
    echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The packaged etcd service, if it was started anyway, would hold 2379 on 127.0.0.1.
systemctl disable --now etcd.service >/dev/null 2>&1 || true
# Only the haproxy binary is used (`haproxy -c`); its packaged service has no
# business running on a test machine.
systemctl disable --now haproxy.service >/dev/null 2>&1 || true
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
echo "==> test dependencies ready: $(etcd --version | head -1); $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
