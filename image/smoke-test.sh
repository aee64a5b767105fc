#!/usr/bin/env bash
# Boots image/out/pgbox.qcow2 once in QEMU as a one-box, all-roles cluster
# and checks that it becomes a working primary.
#
#   image/smoke-test.sh [--uefi] [--bad-config] [--boot-only] [--timeout SECONDS] [--keep]
#
#   (default)     direct kernel boot of image/out/vmlinuz + initrd.img (fast)
#   --uefi        boot the disk itself through OVMF, as a real machine would
#   --bad-config  give the box an invalid pgbox.yaml: expect the error on the
#                 console and no database service
#   --boot-only   check only that the image boots (read-only root, data
#                 partition mounted and grown, binaries present)
#   --keep        leave the run directory (console.log, marks.log, disk)
#
# The guest is on QEMU user networking with restrict=on: it can reach
# nothing, and the host reaches its API (8008) and router (5000) only through
# forwards on 127.0.0.1. Readiness comes from the guest's second serial port
# (pgbox-marks.service) and from the API, never from scraping the console.
# Environment: PGBOX_BIN_DIR (where pgboxctl is, default target/release),
# PGBOX_SMOKE_API_PORT, PGBOX_SMOKE_RW_PORT (host ports),
# PGBOX_SMOKE_ACCEL (kvm or tcg; default: probe KVM, fall back to TCG),
# PGBOX_SMOKE_APPEND (more kernel arguments, direct boot only: e.g.
# "systemd.log_level=debug" to follow a slow boot on the console),
# PGBOX_SMOKE_DEBUG=1 (the guest appends systemd-analyze's critical chain,
# blame and the journal to marks.log).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
OUT=$HERE/out
. "$HERE/lib/common.sh"

uefi=0 bad=0 boot_only=0 keep=0 timeout=900
while [ $# -gt 0 ]; do
	case $1 in
	--uefi) uefi=1 ;;
	--bad-config) bad=1 ;;
	--boot-only) boot_only=1 ;;
	--keep) keep=1 ;;
	--timeout) timeout=$2; shift ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done

for f in pgbox.qcow2 vmlinuz initrd.img cmdline.txt; do
	[ -f "$OUT/$f" ] || die "image/out/$f is missing: run image/build.sh first"
done

. "$REPO/scripts/lib/host-packages.sh"
ensure_host_packages vm || die "the host tools above are missing (scripts/host-packages.list)"

if [ "$boot_only" -eq 0 ] && [ "$bad" -eq 0 ] && [ -x "$REPO/target/release/pgboxd" ] &&
	! "$REPO/target/release/pgboxd" firstboot --help >/dev/null 2>&1; then
	info "this pgboxd has no 'firstboot' yet: checking the boot only"
	boot_only=1
fi

mode=direct suffix=''
[ "$uefi" -eq 1 ] && mode=uefi
[ "$bad" -eq 1 ] && suffix=-bad
RUN=$OUT/smoke-$mode$suffix
rm -rf "$RUN"
mkdir -p "$RUN"
api_port=${PGBOX_SMOKE_API_PORT:-18008}
rw_port=${PGBOX_SMOKE_RW_PORT:-15000}

qemu_pid=
cleanup() {
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	if [ "$keep" -eq 0 ] && [ "${failed:-1}" -eq 0 ]; then
		rm -rf "$RUN"
	fi
}
trap cleanup EXIT

# A one-box cluster with every role. Fresh secrets each run: the file must
# never hold a password that someone could reuse.
secret() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | cut -c1-24; }
app_password=$(secret)
cat >"$RUN/pgbox.yaml" <<EOF
cluster:
  name: smoke
node: box1
nodes:
  - name: box1
    address: 10.0.2.15
    roles: [postgres, etcd, router]
secrets:
  superuser_password: "$(secret)"
  replication_password: "$(secret)"
  app_password: "$app_password"
  etcd_password: "$(secret)"
etcd:
  allow_unsafe_member_count: true
EOF
if [ "$bad" -eq 1 ]; then
	# Two mistakes a person makes: a misspelt key and a node with no role.
	sed -i 's/^cluster:/clustr:/; s/roles: \[postgres, etcd, router\]/roles: []/' "$RUN/pgbox.yaml"
fi

# /dev/kvm exists on some build machines but a KVM guest hangs there: try a
# kernel with no root file system, which panics at once when KVM works.
accel=${PGBOX_SMOKE_ACCEL:-}
if [ -z "$accel" ]; then
	accel=tcg
	if [ -w /dev/kvm ] && timeout 15 qemu-system-x86_64 -accel kvm -machine pc -m 128 -nodefaults \
		-display none -no-reboot -serial stdio -kernel "$OUT/vmlinuz" \
		-append "console=ttyS0 panic=-1" </dev/null 2>/dev/null | grep -q 'Kernel panic'; then
		accel=kvm
	fi
fi
case $accel in
kvm) accel_args=(-accel kvm -cpu host) ;;
# Without tb-size each emulated guest grows to about 1 GiB of host memory.
tcg) accel_args=(-accel tcg,tb-size=128) ;;
*) die "PGBOX_SMOKE_ACCEL must be kvm or tcg" ;;
esac

# The image stays untouched: the guest writes to an overlay, made larger
# than the image so that the data partition's growth at first boot is tested.
qemu-img create -q -f qcow2 -b "$OUT/pgbox.qcow2" -F qcow2 "$RUN/disk.qcow2" 8G

boot_args=()
if [ "$uefi" -eq 1 ]; then
	cp /usr/share/OVMF/OVMF_VARS_4M.fd "$RUN/vars.fd"
	boot_args=(-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
		-drive if=pflash,format=raw,unit=1,file="$RUN/vars.fd")
else
	# QEMU's emulated TSC drifts under load: one guest clock was seen 19 s
	# ahead. Only a VM needs this, so it is not in the image's command line.
	boot_args=(-kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img"
		-append "$(cat "$OUT/cmdline.txt") clocksource=hpet tsc=unstable ${PGBOX_SMOKE_APPEND:-}")
fi

info "booting ($mode, $accel$([ "$bad" -eq 1 ] && echo ', bad config')); console: $RUN/console.log"
started=$(date +%s.%N)
qemu-system-x86_64 -machine pc "${accel_args[@]}" -m 512 -smp 1 \
	-nodefaults -no-user-config -display none \
	-serial file:"$RUN/console.log" -serial file:"$RUN/marks.log" \
	-drive file="$RUN/disk.qcow2",if=virtio,format=qcow2,cache=writeback,discard=unmap \
	-netdev user,id=net0,restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$api_port-10.0.2.15:8008,hostfwd=tcp:127.0.0.1:$rw_port-10.0.2.15:5000 \
	-device virtio-net-pci,netdev=net0 \
	-device i6300esb \
	-fw_cfg name=opt/pgbox/config,file="$RUN/pgbox.yaml" \
	-fw_cfg name=opt/pgbox/marks,string=/dev/ttyS1 \
	${PGBOX_SMOKE_DEBUG:+-fw_cfg name=opt/pgbox/debug,string=1} \
	"${boot_args[@]}" </dev/null >"$RUN/qemu.log" 2>&1 &
qemu_pid=$!

elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
fail() {
	failed=1
	printf 'FAIL: %s\n' "$*" >&2
	echo "--- marks" >&2; cat "$RUN/marks.log" >&2 2>/dev/null || true
	echo "--- console (last 40 lines)" >&2; tail -n 40 "$RUN/console.log" >&2 2>/dev/null || true
	keep=1
	echo "run directory kept: $RUN" >&2
	exit 1
}
mark() { grep -a "^PGBOX-MARK $1" "$RUN/marks.log" 2>/dev/null; }

t_up='' t_primary=''
while :; do
	kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited: $(cat "$RUN/qemu.log")"
	if [ -z "$t_up" ] && mark up >/dev/null; then
		t_up=$(elapsed)
		info "booted to multi-user in ${t_up}s (guest uptime $(mark up | sed 's/.*uptime=//')s)"
		{ [ "$boot_only" -eq 1 ] || [ "$bad" -eq 1 ]; } && break
	fi
	if [ "$boot_only" -eq 0 ] && [ "$bad" -eq 0 ] &&
		[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$api_port/primary" || true)" = 200 ]; then
		t_primary=$(elapsed)
		break
	fi
	awk -v e="$(elapsed)" -v t="$timeout" 'BEGIN { exit !(e > t) }' && fail "not ready after ${timeout}s"
	sleep 1
done
# The marks are written once multi-user is reached; wait for them when the
# API answered first.
for _ in $(seq 1 120); do
	if mark up >/dev/null; then
		[ -n "$t_up" ] || t_up=$(elapsed)
		break
	fi
	sleep 1
done
[ -n "$t_up" ] || fail "no boot marks on the second serial port"
tr -d '\r' <"$RUN/marks.log" | grep -a '^PGBOX-MARK' | sed 's/^/    /'

check() {
	if grep -aqE "^PGBOX-MARK $1" "$RUN/marks.log"; then
		info "ok: $2"
	else
		fail "$2 (no mark matching '$1')"
	fi
}
check 'mount=/ type=erofs ro' "the root is erofs, read-only"
check 'mount=/var type=tmpfs rw' "/var is a tmpfs"
check 'mount=/var/lib/pgbox type=ext4 rw' "the data partition is mounted"
check 'mount=/run/pgbox/cfgpart type=vfat ro' "the config partition is mounted read-only"
check 'bin=/usr/lib/postgresql/17/bin/postgres' "PostgreSQL 17 is there"
check 'bin=/usr/bin/etcd' "etcd is there"
check 'bin=/usr/sbin/haproxy' "HAProxy is there"
check 'bin=/usr/bin/pgbackrest' "pgBackRest is there"
data_bytes=$(mark 'mount=/var/lib/pgbox' | sed -n 's/.*bytes=\([0-9]*\).*/\1/p')
[ -n "$data_bytes" ] && [ "$data_bytes" -gt $((4 * 1024 * 1024 * 1024)) ] ||
	fail "the data partition was not grown into the 8G disk ($(human "${data_bytes:-0}"))"
info "ok: the data partition grew to $(human "$data_bytes")"

if [ "$bad" -eq 1 ]; then
	check 'unit=pgbox-firstboot state=failed' "first boot refused the file"
	check 'config-error' "the error is in /run/pgbox/config-error"
	check 'unit=pgboxd state=inactive' "pgboxd did not start"
	check 'unit=pgbox-etcd state=inactive' "etcd did not start"
	check 'unit=pgbox-repository state=inactive' "the backup repository did not start"
	mark role= >/dev/null && fail "role markers were rendered from a bad file"
	grep -aq 'clustr' "$RUN/console.log" || fail "the console does not show the error"
	info "ok: the console shows the error"
	# And on the API port (an address by DHCP, pgbox-config-error.service).
	health=""
	for _ in $(seq 1 90); do
		health=$(curl -s -m 5 -w ' HTTP%{http_code}' "http://127.0.0.1:$api_port/health" || true)
		case $health in *HTTP503*) break ;; esac
		sleep 1
	done
	case $health in
	*HTTP503*clustr* | *clustr*HTTP503*) info "ok: /health answers 503 with the error" ;;
	*) fail "/health does not report the error: ${health:-no answer}" ;;
	esac
elif [ "$boot_only" -eq 0 ]; then
	info "primary ready after ${t_primary}s"
	check 'unit=pgbox-firstboot state=active' "first boot applied the file"
	check 'role=postgres' "postgres role"
	pgboxctl=${PGBOX_BIN_DIR:-$REPO/target/release}/pgboxctl
	if [ -x "$pgboxctl" ]; then
		"$pgboxctl" list --api "http://127.0.0.1:$api_port" | sed 's/^/    /' || fail "pgboxctl list"
	fi
	psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -n1 || true)
	[ -n "$psql" ] || fail "psql not found on the host (Debian package postgresql-client)"
	{
		# Through the router's read-write port: HAProxy must send it to the
		# primary it found by /primary health checks.
		for _ in $(seq 1 30); do
			out=$(PGPASSWORD=$app_password PGCONNECT_TIMEOUT=5 "$psql" -h 127.0.0.1 -p "$rw_port" -U app -d app -XAtq \
				-c 'CREATE TABLE IF NOT EXISTS smoke (id int PRIMARY KEY, at timestamptz DEFAULT now())' \
				-c 'INSERT INTO smoke (id) VALUES (1) ON CONFLICT DO NOTHING' \
				-c 'SELECT count(*) FROM smoke' 2>&1) && break
			sleep 2
		done
		[ "$out" = 1 ] || fail "psql through the router: $out"
		info "ok: wrote and read a row through the router (port 5000)"
	}
fi

if [ -n "${PGBOX_SMOKE_DEBUG:-}" ]; then
	for _ in $(seq 1 300); do grep -aq PGBOX-DEBUG-END "$RUN/marks.log" && break; sleep 1; done
	info "boot analysis: grep PGBOX-DEBUG $RUN/marks.log"
fi
failed=0
echo "PASS ($mode, $accel): multi-user ${t_up}s$([ -n "$t_primary" ] && echo ", primary ready ${t_primary}s") after QEMU start"
