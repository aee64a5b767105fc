#!/usr/bin/env bash
# Bring up a pgbox cluster of real processes on loopback addresses
# (three etcd members, two pgboxd nodes each owning a PostgreSQL), show it
# with `pgboxctl list`, then power off the primary, show the failover, bring
# the old primary back and show it rejoin as a replica.
#
#   scripts/local-cluster.sh            the whole demonstration, then stop
#   scripts/local-cluster.sh --keep     leave the cluster running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false; [ "${1:-}" = "--keep" ] && keep=true
net=127.0.10
base=${PGBOX_DEMO_DIR:-/tmp/pgbox-demo}
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "installing what is needed (Debian packages, once)"
bash scripts/install-test-deps.sh
step "building pgboxd and pgboxctl"
profile=${PGBOX_PROFILE:-release}
cargo build --profile "$profile" -q -p pgbox
bin=$PWD/target/$([ "$profile" = dev ] && echo debug || echo "$profile")

pkill -f "$base/" 2>/dev/null || true; sleep 0.5
rm -rf "$base"; mkdir -p "$base"; chmod 755 "$base"
cat > "$base/pgbox.yaml" <<YAML
cluster: {name: demo}
nodes:
  - {name: e1, address: $net.11, roles: [etcd]}
  - {name: e2, address: $net.12, roles: [etcd]}
  - {name: e3, address: $net.13, roles: [etcd]}
  - {name: db1, address: $net.21, roles: [postgres]}
  - {name: db2, address: $net.22, roles: [postgres]}
secrets:
  superuser_password: "demo-Su-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
  replication_password: "demo-Re-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
  app_password: "demo-App-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
  etcd_password: "demo-Etcd-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
  api_password: "demo-Api-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
# watchdog off: this demonstration SIGKILLs pgboxd, which must not reset the host.
ha: {ttl: 10s, loop_wait: 1s, watchdog: off}
YAML
"$bin/pgboxctl" config check "$base/pgbox.yaml"

step "starting etcd e1 e2 e3 on $net.11-13"
cluster="e1=http://$net.11:2380,e2=http://$net.12:2380,e3=http://$net.13:2380"
for i in 1 2 3; do
  setsid etcd --name e$i --data-dir "$base/etcd$i" \
    --listen-client-urls http://$net.1$i:2379 --advertise-client-urls http://$net.1$i:2379 \
    --listen-peer-urls http://$net.1$i:2380 --initial-advertise-peer-urls http://$net.1$i:2380 \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token demo \
    > "$base/etcd$i.log" 2>&1 &
done

start_node() {
  setsid "$bin/pgboxd" --config "$base/pgbox.yaml" --node "$1" --data-dir "$base/$1" >> "$base/$1.log" 2>&1 &
}
step "starting pgboxd db1 and db2 (logs: $base/db1.log, $base/db2.log)"
start_node db1; start_node db2

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$((limit * 2))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "timed out waiting for: $what" >&2; tail -n 20 "$base"/db*.log >&2; exit 1
}
primary() { for n in db1:21 db2:22; do curl -sf -o /dev/null "http://$net.${n#*:}:8008/primary" && { echo "${n%:*}"; return 0; }; done; return 1; }
# A member counts as streaming once the cluster view (what `pgboxctl list` shows) says so.
streaming() { curl -sf "http://$net.$1:8008/cluster" | python3 -c 'import json,sys; m={x["name"]: x for x in json.load(sys.stdin)["members"]}; sys.exit(m.get(sys.argv[1], {}).get("state") != "streaming")' "$2"; }

wait_for 180 "a primary" primary
p=$(primary); r=$([ "$p" = db1 ] && echo db2 || echo db1); rip=$([ "$r" = db1 ] && echo 21 || echo 22)
wait_for 180 "$r streaming" streaming "$rip" "$r"
# Synchronous mode (the default) lets only the recorded sync standby be promoted.
sync_standby() { curl -sf "http://$net.$1:8008/cluster" | grep -q '"role":"sync_standby"'; }
wait_for 60 "a synchronous standby" sync_standby "$rip"
"$bin/pgboxctl" list --config "$base/pgbox.yaml"

step "power loss of the primary $p: SIGKILL to pgboxd and PostgreSQL together"
pkill -KILL -f -- "--node $p " || true; pkill -KILL -f "$base/$p/postgres" || true
t0=$(date +%s.%N)
wait_for 120 "$r promoted" sh -c "curl -sf -o /dev/null http://$net.$rip:8008/primary"
awk -v r="$r" -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "failover: %s became primary %.1f s after the power loss (lease ttl 10 s)\n", r, t1 - t0 }'
"$bin/pgboxctl" list --config "$base/pgbox.yaml"

step "bringing $p back: it rejoins as a replica of $r"
start_node "$p"
pip=$([ "$p" = db1 ] && echo 21 || echo 22)
wait_for 180 "$p streaming again" streaming "$rip" "$p"
grep -i "pg_rewind" "$base/$p.log" | tail -n 3 || true
"$bin/pgboxctl" list --config "$base/pgbox.yaml"

wait_for 60 "$p recorded as the synchronous standby" sync_standby "$rip"
step "planned switchover back to $p (pgboxctl switchover)"
"$bin/pgboxctl" switchover --config "$base/pgbox.yaml" --candidate "$p"
wait_for 60 "$r streaming again" streaming "$pip" "$r"
wait_for 60 "a synchronous standby" sync_standby "$pip"
"$bin/pgboxctl" list --config "$base/pgbox.yaml"
"$bin/pgboxctl" history --config "$base/pgbox.yaml"

if $keep; then
  step "cluster left running; stop it with: pkill -f $base/"
else
  step "stopping"
  pkill -TERM -f -- "--data-dir $base/" || true; sleep 3; pkill -f "$base/" || true
fi
