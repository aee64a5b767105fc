#!/usr/bin/env bash
# Builds the pgbox appliance disk image from Debian 13 (trixie) packages and
# the pgbox release binaries. Run as root on Debian 12 or newer; it needs
# only the Debian mirror (and crates.io for the pgbox build).
#
#   image/build.sh [--reuse-binaries] [--no-raw] [--clean]
#
#   --reuse-binaries  use target/release/{pgboxd,pgboxctl} as they are
#   --no-raw          skip the compressed raw image (quicker test builds)
#   --clean           forget the cached tools root and package root
#
# PGBOX_BIN_DIR: where pgboxd and pgboxctl are (default: target/release).
#
# Outputs in image/out/: pgbox.qcow2, pgbox.img.zst, vmlinuz, initrd.img,
# cmdline.txt (the kernel command line of the UKI), packages.txt.
# Downloads and the two slow stages are cached in image/cache/.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
CACHE=$HERE/cache
OUT=$HERE/out
WORK=$CACHE/work
. "$HERE/lib/common.sh"
. "$HERE/lib/base.sh"
. "$HERE/lib/trim.sh"
. "$HERE/lib/initrd.sh"

reuse_binaries=0 raw=1 clean=0
for arg in "$@"; do
	case $arg in
	--reuse-binaries) reuse_binaries=1 ;;
	--no-raw) raw=0 ;;
	--clean) clean=1 ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	*) die "unknown option $arg (see --help)" ;;
	esac
done

[ "$(id -u)" -eq 0 ] || die "run as root: the package root is made with chroot and owned by many users"

# The kernel command line of the UKI. The root is found by partition label,
# so the same image boots from any disk controller. console: the last one is
# /dev/console (systemd's status, first-boot errors); serial last, as cloud
# images do, since a VM's serial port is what a harness or hypervisor reads.
CMDLINE="root=PARTLABEL=pgbox-root rootfstype=erofs ro console=tty0 console=ttyS0,115200 quiet panic=10"

step "host tools"
. "$REPO/scripts/lib/host-packages.sh"
groups=(image)
# etcd-client, a pgbox dependency, compiles protobuf definitions.
[ "$reuse_binaries" -eq 1 ] || groups+=(build)
ensure_host_packages "${groups[@]}" || die "the host tools above are missing (scripts/host-packages.list)"
MIRROR=$(detect_mirror)
info "mirror: $MIRROR ($SUITE)"
mkdir -p "$CACHE" "$OUT"
# One build at a time writes image/out/; pgbox-vmtest copies it under a
# shared lock on the same file, so it never boots half of a build.
exec 9>"$OUT/.build.lock"
if ! flock -n 9; then
	info "another image/build.sh holds $OUT/.build.lock (or a VM test is copying the image); waiting"
	flock 9
fi
if [ "$clean" -eq 1 ]; then
	rm -rf "$CACHE"/tools-* "$CACHE"/base-*.tar
fi

step "pgbox binaries"
if [ "$reuse_binaries" -eq 0 ]; then
	command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH
	command -v cargo >/dev/null || die "no cargo: install a Rust toolchain (rustup), or pass --reuse-binaries"
	(cd "$REPO" && nice cargo build --release -p pgbox)
fi
BIN=${PGBOX_BIN_DIR:-$REPO/target/release}
for b in pgboxd pgboxctl; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is missing (build without --reuse-binaries)"
done
info "pgboxd $(human "$(stat -c %s "$BIN/pgboxd")"), pgboxctl $(human "$(stat -c %s "$BIN/pgboxctl")")"

step "tools root (trixie: systemd-repart, ukify, mkfs)"
build_tools

step "package root (trixie minbase + appliance packages)"
build_base

step "assembling the root"
rm -rf "$WORK"
mkdir -p "$WORK/stage/esp/EFI/BOOT" "$WORK/stage/cfg" "$WORK/kernel"
ROOT=$WORK/stage/rootfs
mkdir -p "$ROOT"
tar -xpf "$BASE" -C "$ROOT" --xattrs --xattrs-include='*' --numeric-owner
cp "$ROOT"/boot/vmlinuz-* "$WORK/kernel/vmlinuz"
KVER=$(basename "$(ls -d "$ROOT"/usr/lib/modules/*/)")
info "kernel $KVER"
root_before=$(du -sb "$ROOT" | cut -f1)

step "initrd"
build_initrd

step "trimming the root"
trim_packages
relink_postgres_clients
trim_kernel_modules
trim_files

step "installing pgbox, units and overlay"
install -m 0755 "$BIN/pgboxd" "$BIN/pgboxctl" "$ROOT/usr/bin/"
# Units, drop-ins and the preset, from the tree shared with other builds.
(cd "$REPO/systemd" && find . -type f \( -name '*.service' -o -name '*.mount' -o -name '*.socket' -o -name '*.target' -o -name '*.timer' -o -name '*.conf' \) -print0) |
	while IFS= read -r -d '' f; do install -D -m 0644 "$REPO/systemd/$f" "$ROOT/usr/lib/systemd/system/$f"; done
install -D -m 0644 "$REPO/systemd/presets/90-pgbox.preset" "$ROOT/usr/lib/systemd/system-preset/90-pgbox.preset"
cp -a --no-preserve=ownership "$HERE/overlay/." "$ROOT/"
cp "$HERE/config-partition/README.txt" "$WORK/stage/cfg/README.txt"

step "PostgreSQL data directory template"
# initdb takes about a minute on a small or emulated machine; made here once
# with the options every box uses, it turns a box's first boot into a copy
# (appliance/src/postgres/template.rs). pgboxd makes it, so the options
# cannot drift from the ones it would use on the box.
in_chroot "$ROOT" /usr/bin/pgboxd make-pgdata-template /usr/lib/pgbox/pgdata-template >"$WORK/template.log" 2>&1 ||
	{ cat "$WORK/template.log"; die "making the data directory template failed"; }
info "$(tail -n1 "$WORK/template.log") ($(du -sh "$ROOT/usr/lib/pgbox/pgdata-template" | cut -f1))"

step "enabling and masking units"
# Links left behind by the units of trimmed packages (apt timers, ...).
in_chroot "$ROOT" find /etc/systemd/system -xtype l -delete
in_chroot "$ROOT" systemctl preset-all --preset-mode=full >"$WORK/preset.log" 2>&1 ||
	{ cat "$WORK/preset.log"; die "systemctl preset-all failed"; }
mapfile -t masks < <(grep -vE '^\s*(#|$)' "$REPO/systemd/masked-units.list")
in_chroot "$ROOT" systemctl mask --quiet "${masks[@]}"
info "enabled: $(cd "$ROOT/etc/systemd/system" && find . -path '*.wants/*' -type l -printf '%f\n' | sort -u | paste -sd' ')"

step "finishing the root"
finish_package_state
# Empty, not "uninitialized": PID 1 then makes a transient ID at every boot
# (the root is read-only) and no ConditionFirstBoot= unit ever runs.
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
mkdir -p "$ROOT/var/lib/pgbox" "$ROOT/run/pgbox"
# Every program the box runs must find its libraries after the trim.
missing=$(chroot "$ROOT" /bin/sh -c '
	for f in /usr/bin/pgboxd /usr/bin/etcd /usr/sbin/haproxy /usr/lib/postgresql/*/bin/* /usr/lib/systemd/systemd /usr/lib/systemd/systemd-* /usr/bin/* /usr/sbin/*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		ldd "$f" 2>/dev/null | grep "not found" | sed "s|^|$f: |"
	done' | sort -u)
[ -z "$missing" ] || die "libraries missing after the trim:
$missing"
info "$(chroot "$ROOT" sh -c '/usr/lib/postgresql/*/bin/postgres --version'); $(chroot "$ROOT" etcd --version | head -n1); $(chroot "$ROOT" haproxy -v | head -n1 | cut -d' ' -f1-3)"
chroot "$ROOT" psql --version >/dev/null || die "psql is not on the PATH of the root"
# pgboxd runs it with --config of its own (archiving, the TLS server, backups).
pgbackrest_version=$(chroot "$ROOT" /usr/bin/pgbackrest version) || die "/usr/bin/pgbackrest does not run in the root"
info "$pgbackrest_version"
root_after=$(du -sb "$ROOT" | cut -f1)
info "root: $(human "$root_before") -> $(human "$root_after")"

step "unified kernel image"
printf '%s\n' "$CMDLINE" >"$WORK/cmdline.txt"
in_tools ukify build \
	--linux="$WORK/kernel/vmlinuz" \
	--initrd="$WORK/kernel/initrd.img" \
	--cmdline="@$WORK/cmdline.txt" \
	--os-release="@$ROOT/usr/lib/os-release" \
	--uname="$KVER" \
	--output="$WORK/stage/esp/EFI/BOOT/BOOTX64.EFI" >"$WORK/ukify.log" 2>&1 ||
	{ cat "$WORK/ukify.log"; die "ukify failed"; }
info "EFI/BOOT/BOOTX64.EFI $(human "$(stat -c %s "$WORK/stage/esp/EFI/BOOT/BOOTX64.EFI")")"

step "GPT disk (systemd-repart, offline)"
# A fixed seed: the same inputs give the same partition and file system
# UUIDs, and every flashed copy is meant to be identical anyway.
cp -r "$HERE/repart.d" "$WORK/repart.d"
in_tools systemd-repart --empty=create --size=auto --offline=yes --dry-run=no \
	--seed=7c3b1d52-6a1e-4d8e-9b0f-5e2a6f1c9d40 \
	--definitions="$WORK/repart.d" --copy-source="$WORK/stage" \
	--json=pretty "$WORK/pgbox.raw" >"$WORK/partitions.json" 2>"$WORK/repart.log" ||
	{ cat "$WORK/repart.log"; die "systemd-repart failed"; }
partitions=$(awk -F'"' '/"label"/ { l = $4 } /"raw_size"/ { s = $3; gsub(/[^0-9]/, "", s); print l, s }' "$WORK/partitions.json")
while read -r label size; do info "$(printf '%-11s %s' "$label" "$(human "$size")")"; done <<<"$partitions"

step "outputs"
rm -f "$OUT"/pgbox.qcow2 "$OUT"/pgbox.img.zst
# Both read the same raw disk; side by side they take the time of one.
nice qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd "$WORK/pgbox.raw" "$OUT/pgbox.qcow2" &
qemu_img=$!
if [ "$raw" -eq 1 ]; then
	nice zstd -q -T0 -10 "$WORK/pgbox.raw" -o "$OUT/pgbox.img.zst"
fi
wait "$qemu_img" || die "qemu-img convert failed"
cp "$WORK/kernel/vmlinuz" "$OUT/vmlinuz"
cp "$WORK/kernel/initrd.img" "$OUT/initrd.img"
cp "$WORK/cmdline.txt" "$OUT/cmdline.txt"
cp "$ROOT/usr/share/pgbox/packages.txt" "$OUT/packages.txt"
rm -f "$WORK/pgbox.raw"

step "done"
root_part=$(awk '$1 == "pgbox-root" { print $2 }' <<<"$partitions")
{
	printf '    %-16s %s\n' "root (files)" "$(human "$root_after")"
	[ -n "$root_part" ] && printf '    %-16s %s\n' "root (erofs)" "$(human "$root_part")"
	for f in pgbox.qcow2 pgbox.img.zst vmlinuz initrd.img; do
		[ -f "$OUT/$f" ] && printf '    %-16s %s\n' "$f" "$(human "$(stat -c %s "$OUT/$f")")"
	done
	printf '    %-16s %s\n' "disk (virtual)" "$(human "$(qemu-img info --output=json "$OUT/pgbox.qcow2" | awk -F': ' '/"virtual-size"/ { gsub(/[^0-9]/, "", $2); print $2; exit }')")"
	printf '    %-16s %ss\n' "build time" "$(($(date +%s) - build_started))"
} | tee "$OUT/sizes.txt"
