#!/usr/bin/env bash
# Checks of the buildroot tree that need no buildroot (and no network once
# its tools are installed): the Kconfig of the external tree, the scripts,
# the disk layout genimage makes compared with the offline image's, the
# units, and that the two images share their files instead of copying them.
#
#   buildroot/check-offline.sh
#
# Installs its missing Debian tools with apt-get (as root), and kconfiglib
# from PyPI into a virtualenv under $PGBOX_CI_CACHE (default
# ~/.cache/pgbox-ci), never into the repository. Exits non-zero on the
# first failed check. buildroot/verify-with-buildroot.sh checks the same
# tree against a buildroot release.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
CACHE=${PGBOX_CI_CACHE:-$HOME/.cache/pgbox-ci}
KCONFIGLIB_VERSION=14.1.0
started=$(date +%s)

ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

step "tools"
# Its tools (shellcheck, genimage, mtools, dosfstools, ...): scripts/host-packages.list
. "$REPO/scripts/lib/host-packages.sh"
ensure_host_packages buildroot || fail "the Debian tools above are missing"
PATH=$PATH:/usr/sbin:/sbin
venv=$CACHE/kconfig-venv
if ! "$venv/bin/python" -c "import kconfiglib" 2>/dev/null ||
	[ "$("$venv/bin/pip" show kconfiglib 2>/dev/null | sed -n 's/^Version: //p')" != "$KCONFIGLIB_VERSION" ]; then
	printf 'installing kconfiglib %s into %s\n' "$KCONFIGLIB_VERSION" "$venv"
	mkdir -p "$CACHE"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q "kconfiglib==$KCONFIGLIB_VERSION"
fi
ok "shellcheck $(shellcheck --version | sed -n 's/^version: //p'), genimage $(genimage --version), $(systemd-analyze --version | head -n1), kconfiglib $KCONFIGLIB_VERSION"

step "external tree: layout and Kconfig (kconfiglib)"
for f in external.desc external.mk Config.in configs/pgbox_x86_64_defconfig; do
	[ -f "$HERE/$f" ] || fail "buildroot/$f is missing"
done
grep -qx 'name: PGBOX' "$HERE/external.desc" || fail "external.desc must name the tree PGBOX (BR2_EXTERNAL_PGBOX_PATH is used everywhere)"
# The Kconfig is parsed as buildroot would source it, with the few
# buildroot symbols it refers to declared as stubs. Any other reference
# to a symbol that is not defined is an error (kconfiglib's warning):
# verify-with-buildroot.sh checks them against buildroot itself.
BR2_EXTERNAL_PGBOX_PATH=$HERE "$venv/bin/python" - "$HERE" <<'PY'
import os, re, sys
import kconfiglib

here = sys.argv[1]
stubs = ["BR2_INIT_SYSTEMD", "BR2_PACKAGE_HOST_RUSTC",
         "BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS",
         "BR2_PACKAGE_HOST_GO_TARGET_ARCH_SUPPORTS"]
top = os.path.join(os.environ.get("TMPDIR", "/tmp"), "pgbox-kconfig-top-%d" % os.getpid())
with open(top, "w") as f:
    f.write('mainmenu "stub of buildroot for the pgbox external tree"\n')
    for s in stubs:
        f.write("config %s\n\tbool \"%s\"\n" % (s, s))
    f.write('source "$BR2_EXTERNAL_PGBOX_PATH/Config.in"\n')
try:
    kconf = kconfiglib.Kconfig(top, warn_to_stderr=False)
finally:
    os.unlink(top)
if kconf.warnings:
    sys.exit("FAIL kconfiglib: " + "\n".join(kconf.warnings))

pkgdir = os.path.join(here, "package")
packages = sorted(os.listdir(pkgdir))
for p in packages:
    sym = "BR2_PACKAGE_" + p.upper().replace("-", "_")
    if sym not in kconf.syms or not kconf.syms[sym].nodes:
        sys.exit("FAIL package/%s has no %s in the Kconfig tree" % (p, sym))
    for f in ("Config.in", p + ".mk"):
        if not os.path.isfile(os.path.join(pkgdir, p, f)):
            sys.exit("FAIL package/%s/%s is missing" % (p, f))
    node = kconf.syms[sym].nodes[0]
    if not node.help:
        sys.exit("FAIL %s has no help text" % sym)
print("ok   Config.in parses; packages: %s" % ", ".join(packages))

# Our symbols in the defconfig must be settable with their dependencies
# met, and must not be without them.
ours = {}
for line in open(os.path.join(here, "configs", "pgbox_x86_64_defconfig")):
    m = re.match(r"^(BR2_\w+)=(.*)$", line.strip())
    if m and m.group(1) in kconf.syms and m.group(1) not in stubs and kconf.syms[m.group(1)].nodes:
        ours[m.group(1)] = m.group(2)
if sorted(ours) != sorted("BR2_PACKAGE_" + p.upper() for p in packages):
    sys.exit("FAIL the defconfig should enable every package of the tree, has %s" % sorted(ours))
for s in stubs:
    kconf.syms[s].set_value(2)
for s, v in ours.items():
    kconf.syms[s].set_value(v)
    if kconf.syms[s].str_value != v:
        sys.exit("FAIL %s=%s does not hold with its dependencies met" % (s, v))
kconf.syms["BR2_INIT_SYSTEMD"].set_value(0)
if kconf.syms["BR2_PACKAGE_PGBOX"].str_value != "n":
    sys.exit("FAIL BR2_PACKAGE_PGBOX stays set without systemd")
kconf.syms["BR2_PACKAGE_HOST_GO_TARGET_ARCH_SUPPORTS"].set_value(0)
if kconf.syms["BR2_PACKAGE_ETCD"].str_value != "n":
    sys.exit("FAIL BR2_PACKAGE_ETCD stays set without Go support")
print("ok   defconfig sets %s; they drop when their dependencies do"
      % ", ".join("%s=%s" % kv for kv in sorted(ours.items())))
PY

step "shellcheck"
mapfile -t scripts < <(cd "$REPO" && find buildroot -name '*.sh' -type f | sort)
(cd "$REPO" && shellcheck -x "${scripts[@]}") || fail "shellcheck"
ok "shellcheck clean: ${scripts[*]}"

step "one source of truth with the offline image"
# The defconfig's overlay is the offline image's overlay directory.
overlay=$(sed -n 's/^BR2_ROOTFS_OVERLAY="\(.*\)"$/\1/p' "$HERE/configs/pgbox_x86_64_defconfig")
overlay=${overlay//\$(BR2_EXTERNAL_PGBOX_PATH)/$HERE}
if ! [ -d "$overlay" ] || [ "$(cd "$overlay" && pwd)" != "$REPO/image/overlay" ]; then
	fail "BR2_ROOTFS_OVERLAY ($overlay) is not image/overlay"
fi
ok "BR2_ROOTFS_OVERLAY is image/overlay"
# Every file the post-build and post-image scripts take from the shared
# tree exists, under the name they use.
for f in systemd/presets/90-pgbox.preset systemd/masked-units.list image/config-partition/README.txt; do
	[ -f "$REPO/$f" ] || fail "$f is missing (the buildroot scripts read it)"
	grep -qF "${f#*/}" "$HERE/board/pgbox/post-build.sh" "$HERE/board/pgbox/post-image.sh" ||
		fail "no script in board/pgbox reads $f"
done
ok "the shared files the scripts read are all there"
# No copies: no file of the buildroot tree has the content of a shared one.
dups=$(
	{
		(cd "$REPO" && find systemd image/overlay image/config-partition image/repart.d -type f -print0 | xargs -0 sha256sum)
		(cd "$REPO" && find buildroot -type f -print0 | xargs -0 sha256sum)
	} | sort | awk '{ if ($1 == h) print prev " = " $2; h = $1; prev = $2 }' | grep 'buildroot/' || true
)
[ -z "$dups" ] || fail "copies of shared files in buildroot/: $dups"
ok "no file in buildroot/ copies one of systemd/, image/overlay/, image/config-partition/, image/repart.d/"
# First boot: buildroot leaves /etc/machine-id empty, which never triggers
# ConditionFirstBoot=; no unit of ours may rely on it.
if grep -rl '^ConditionFirstBoot=' "$REPO/systemd" "$HERE/package"; then
	fail "a unit uses ConditionFirstBoot=, which never fires on these images"
fi
ok "no unit uses ConditionFirstBoot= (pgbox-firstboot.service runs at every boot; pgboxd decides from the data partition)"

step "disk layout: genimage.cfg against image/repart.d"
mkdir -p "$WORK/gi/in" "$WORK/gi/root" "$WORK/gi/out"
# Placeholders under the names post-image.sh stages; genimage only copies
# them into their partitions.
head -c 1500000 /dev/urandom >"$WORK/gi/in/bzImage"
head -c 8M /dev/urandom >"$WORK/gi/in/rootfs.erofs"
cp "$REPO/image/config-partition/README.txt" "$WORK/gi/in/README.txt"
genimage --rootpath "$WORK/gi/root" --tmppath "$WORK/gi/tmp" --inputpath "$WORK/gi/in" \
	--outputpath "$WORK/gi/out" --config "$HERE/board/pgbox/genimage.cfg" >"$WORK/genimage.log" 2>&1 ||
	{ cat "$WORK/genimage.log"; fail "genimage"; }
img=$WORK/gi/out/pgbox.img
sfdisk --json "$img" >"$WORK/table.json"
# Each partition's file system label, and the files that must be on the
# two FAT partitions, read straight from the image.
while read -r start; do
	off=$((start * 512))
	label=$(blkid -p -O "$off" -s LABEL -o value "$img" || true)
	type=$(blkid -p -O "$off" -s TYPE -o value "$img" || true)
	files=$( { mdir -/ -b -i "$img@@$off" :: 2>/dev/null || true; } | paste -sd' ')
	printf '%s\t%s\t%s\t%s\n' "$start" "$label" "$type" "$files"
done < <(python3 -c 'import json,sys; [print(p["start"]) for p in json.load(open(sys.argv[1]))["partitiontable"]["partitions"]]' "$WORK/table.json") >"$WORK/fs.tsv"
python3 - "$REPO" "$WORK/table.json" "$WORK/fs.tsv" <<'PY'
import configparser, glob, json, os, sys

repo, table, fs = sys.argv[1:4]
# systemd-repart's type names used by image/repart.d and the overlay.
types = {"esp": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
         "root": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",       # root, x86-64
         "linux-generic": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}
def size(v):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(v[:-1]) * units[v[-1]] if v[-1] in units else int(v)
def load(path):
    c = configparser.ConfigParser(interpolation=None)
    c.optionxform = str
    c.read(path)
    p = dict(c["Partition"])
    p["Type"] = types.get(p["Type"], p["Type"].upper())
    return p

want = [load(f) for f in sorted(glob.glob(os.path.join(repo, "image/repart.d/*.conf")))]
t = json.load(open(table))["partitiontable"]
got = t["partitions"]
fsinfo = {int(l.split("\t")[0]): l.rstrip("\n").split("\t")[1:] for l in open(fs)}
if t["label"] != "gpt":
    sys.exit("FAIL partition table is %s, not gpt" % t["label"])
if [p.get("name") for p in got] != [w["Label"] for w in want]:
    sys.exit("FAIL partition order/labels %s, offline image has %s"
             % ([p.get("name") for p in got], [w["Label"] for w in want]))
for p, w in zip(got, want):
    name = w["Label"]
    if p["type"].upper() != w["Type"]:
        sys.exit("FAIL %s: type %s, offline image has %s" % (name, p["type"], w["Type"]))
    if "SizeMinBytes" in w and w.get("SizeMinBytes") == w.get("SizeMaxBytes"):
        if p["size"] * t["sectorsize"] != size(w["SizeMinBytes"]):
            sys.exit("FAIL %s: %d bytes, offline image has %s" % (name, p["size"] * t["sectorsize"], w["SizeMinBytes"]))
    label, fstype, files = fsinfo[p["start"]]
    want_fs = {"vfat": "vfat", "ext4": "ext4", "erofs": None}[w["Format"]]
    if want_fs and fstype != want_fs:
        sys.exit("FAIL %s: file system %r, offline image has %s" % (name, fstype, want_fs))
    # fstab mounts the config and data partitions by file system label.
    if w["Format"] != "erofs" and label != name:
        sys.exit("FAIL %s: file system label %r, expected %r" % (name, label, name))
    print("ok   %-10s %-36s %6d MiB  fs=%-5s label=%s%s" % (
        name, p["type"], p["size"] * t["sectorsize"] >> 20, fstype or "-", label or "-",
        ("  files: " + files) if files else ""))
fat = {w["Label"]: fsinfo[p["start"]][2] for p, w in zip(got, want)}
if "::/EFI/BOOT/BOOTX64.EFI" not in fat["ESP"].split():
    sys.exit("FAIL the ESP has no EFI/BOOT/BOOTX64.EFI: %s" % fat["ESP"])
if "::/README.txt" not in fat["PGBOXCFG"].split():
    sys.exit("FAIL the config partition has no README.txt: %s" % fat["PGBOXCFG"])
# The definition systemd-repart applies at boot must match exactly one
# partition (the data partition), as in the offline image.
d = load(os.path.join(repo, "image/overlay/usr/lib/repart.d/50-data.conf"))
m = [p.get("name") for p in got if p["type"].upper() == d["Type"] and p.get("name") == d["Label"]]
if m != ["PGBOXDATA"]:
    sys.exit("FAIL 50-data.conf (grown at boot) matches %s, not the data partition alone" % m)
print("ok   same order, GPT labels, types, fixed sizes and file system labels as image/repart.d; "
      "50-data.conf matches only PGBOXDATA")
PY

step "units: systemd-analyze verify"
# A scratch root: the host's units (for the targets ours refer to), ours
# on top, and HAProxy's base unit of package/pgbox under the drop-in.
# systemd-analyze checks that every Exec program exists in that root; the
# programs of the image (pgboxd, etcd, HAProxy, systemd's helpers) are not
# on this host, so they are empty stand-ins there, listed below: this
# checks the unit files, not the programs.
root=$WORK/root
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin" "$root/usr/sbin" "$root/etc/systemd/system"
# Merged /usr, as on both images (units name /bin/... and /usr/bin/...).
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
(cd "$REPO/systemd" && find . -type f \( -name '*.service' -o -name '*.mount' -o -name '*.socket' -o -name '*.target' -o -name '*.timer' -o -name '*.conf' \) -print0) |
	while IFS= read -r -d '' f; do install -D -m 0644 "$REPO/systemd/$f" "$root/usr/lib/systemd/system/$f"; done
install -m 0644 "$HERE/package/pgbox/haproxy.service" "$root/usr/lib/systemd/system/haproxy.service"
install -D -m 0755 "$REPO/image/overlay/usr/lib/pgbox/marks" "$root/usr/lib/pgbox/marks"
mapfile -t units < <(cd "$REPO/systemd" && { find . -maxdepth 1 -name '*.service' -printf '%f\n'; find . -mindepth 1 -maxdepth 1 -type d -name '*.d' -printf '%f\n' | sed 's/\.d$//'; } | sort -u)
stubbed=()
while read -r prog; do
	[ -e "$root$prog" ] && continue
	install -D -m 0755 /dev/null "$root$prog"
	printf '#!/bin/sh\n' >"$root$prog"
	stubbed+=("$prog")
done < <(cd "$root/usr/lib/systemd/system" && for u in "${units[@]}"; do
	cat "$u"
	if [ -d "$u.d" ]; then cat "$u.d"/*.conf; fi
done | sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\(\/[^ ]*\).*/\1/p' | sort -u)
out=$(cd "$root" && systemd-analyze verify --man=no --generators=no --root="$root" "${units[@]}" 2>&1) ||
	{ printf '%s\n' "$out"; fail "systemd-analyze verify"; }
# Keys newer than this host's systemd, which both images' systemd (257 and
# 258) know: ImportCredential= came with systemd 254. Only their "unknown
# key" warnings are dropped, and only on an older host.
host_systemd=$(systemd-analyze --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
if [ "${host_systemd:-0}" -lt 254 ]; then
	out=$(printf '%s\n' "$out" | grep -v "Unknown key 'ImportCredential' in section \[Service\]" || true)
fi
# Warnings (unknown keys, bad values) do not change the exit status.
[ -z "$out" ] || { printf '%s\n' "$out"; fail "systemd-analyze verify printed warnings"; }
ok "verified: ${units[*]} (with drop-ins)"
ok "programs stood in for, absent on this host: ${stubbed[*]}"

printf '\nall buildroot offline checks passed in %ss\n' "$(($(date +%s) - started))"
