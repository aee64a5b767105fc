#!/usr/bin/env bash
# Buildroot post-build script of the pgbox image: installs into the target
# root what the offline image build (image/build.sh, "installing pgbox,
# units and overlay" to "finishing the root") installs, from the same
# files: the units, drop-ins and preset of systemd/, the masks of
# systemd/masked-units.list. image/overlay/ is copied by buildroot itself
# (BR2_ROOTFS_OVERLAY) just before this script runs.
#
# Called by buildroot as: post-build.sh TARGET_DIR
# with HOST_DIR and STAGING_DIR in the environment.
set -euo pipefail

TARGET=${1:?usage: post-build.sh TARGET_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# The workspace: buildroot/board/pgbox/../../..
REPO=$(cd "$HERE/../../.." && pwd)
: "${HOST_DIR:?HOST_DIR is not set (run from buildroot)}"
: "${STAGING_DIR:?STAGING_DIR is not set (run from buildroot)}"

die() { printf 'post-build: error: %s\n' "$*" >&2; exit 1; }
info() { printf 'post-build: %s\n' "$*"; }

# Units and drop-ins, with the same selection as image/build.sh.
(cd "$REPO/systemd" && find . -type f \( -name '*.service' -o -name '*.mount' -o -name '*.socket' -o -name '*.target' -o -name '*.timer' -o -name '*.conf' \) -print0) |
	while IFS= read -r -d '' f; do
		install -D -m 0644 "$REPO/systemd/$f" "$TARGET/usr/lib/systemd/system/$f"
	done
install -D -m 0644 "$REPO/systemd/presets/90-pgbox.preset" "$TARGET/usr/lib/systemd/system-preset/90-pgbox.preset"
# What only this image has: its time client (the offline image has none).
install -D -m 0644 "$HERE/85-pgbox-buildroot.preset" "$TARGET/usr/lib/systemd/system-preset/85-pgbox-buildroot.preset"

# Presets in full mode, so that only what the presets name is enabled, then
# the masks. Buildroot applies the presets again when it makes the root
# file system; the result is the same.
"$HOST_DIR/bin/systemctl" --root="$TARGET" preset-all --preset-mode=full
mapfile -t masks < <(grep -vE '^\s*(#|$)' "$REPO/systemd/masked-units.list")
# A mask is a link to /dev/null in /etc/systemd/system: made directly, so
# that units this image does not have (Debian's pg_receivewal@, ...) are
# masked too, as in the offline image, without systemctl looking them up.
for unit in "${masks[@]}"; do
	ln -sfn /dev/null "$TARGET/etc/systemd/system/$unit"
done
info "enabled: $(cd "$TARGET/etc/systemd/system" && find . -path '*.wants/*' -type l -printf '%f\n' | sort -u | paste -sd' ')"
info "masked: ${#masks[@]} units"

# pgboxd looks for PostgreSQL's programs in /usr/lib/postgresql/MAJOR/bin
# (Debian's layout, which the offline image keeps); buildroot installs them
# in /usr/bin. A link gives the same path on both images. PostgreSQL finds
# its share directory from the resolved path of its programs, so nothing
# else changes.
pg_header=$(find "$STAGING_DIR/usr/include" -name pg_config.h -print -quit)
[ -n "$pg_header" ] || die "no pg_config.h in $STAGING_DIR/usr/include: is BR2_PACKAGE_POSTGRESQL set?"
pg_major=$(sed -n 's/^#define PG_MAJORVERSION_NUM \([0-9]*\)$/\1/p' "$pg_header")
[ -n "$pg_major" ] || die "no PG_MAJORVERSION_NUM in $pg_header"
mkdir -p "$TARGET/usr/lib/postgresql/$pg_major"
ln -sfn ../../../bin "$TARGET/usr/lib/postgresql/$pg_major/bin"
info "PostgreSQL $pg_major: /usr/lib/postgresql/$pg_major/bin -> /usr/bin"

# Empty, not "uninitialized", as in the offline image: PID 1 makes a
# transient machine ID at every boot (the root is read-only) and no
# ConditionFirstBoot= unit runs. pgbox's own first boot does not depend
# on it: pgbox-firstboot.service runs at every boot and pgboxd decides
# from the data partition (/var/lib/pgbox/pgbox.yaml) whether the box is
# new.
: >"$TARGET/etc/machine-id"
rm -f "$TARGET/var/lib/dbus/machine-id"
# Mount points (the data partition under the tmpfs /var is made at boot).
mkdir -p "$TARGET/var/lib/pgbox" "$TARGET/run/pgbox"

# Everything the units start must be there, and the users they run as.
missing=()
for f in usr/bin/pgboxd usr/bin/pgboxctl usr/bin/etcd usr/sbin/haproxy \
	usr/bin/postgres usr/bin/initdb usr/bin/pg_ctl usr/bin/pg_rewind usr/bin/pg_basebackup usr/bin/psql \
	usr/bin/systemd-repart usr/lib/systemd/systemd-networkd usr/lib/systemd/systemd-networkd-wait-online \
	usr/lib/pgbox/marks bin/bash usr/lib/systemd/system/haproxy.service; do
	[ -e "$TARGET/$f" ] || missing+=("/$f")
done
for user in postgres etcd haproxy; do
	grep -q "^$user:" "$TARGET/etc/passwd" || missing+=("user $user")
done
[ ${#missing[@]} -eq 0 ] || die "missing from the root: ${missing[*]}"
info "units, presets, masks, PostgreSQL link and machine-id in place"
