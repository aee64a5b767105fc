#!/usr/bin/env bash
# Checks the BR2_EXTERNAL tree against a local copy of the pinned buildroot
# release, without building anything (and without network):
#   1. `make pgbox_x86_64_defconfig` succeeds;
#   2. every line of the defconfig survives into .config (Kconfig drops
#      unknown symbols and unmet dependencies without an error);
#   3. savedefconfig gives back the committed defconfig;
#   4. utils/check-package -b has nothing to say about our files;
#   5. `make show-info` lists postgresql, etcd, haproxy, systemd and pgbox.
#
#   buildroot/verify-with-buildroot.sh BUILDROOT_DIR
#
# Configures into a temporary output directory, removed at the end.
set -euo pipefail

BR=${1:?usage: verify-with-buildroot.sh BUILDROOT_DIR}
BR=$(cd "$BR" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
DEFCONFIG=pgbox_x86_64_defconfig
started=$(date +%s)

ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

if ! [ -f "$BR/Makefile" ] || ! [ -x "$BR/utils/check-package" ]; then
	fail "$BR is not a buildroot tree"
fi
O=$(mktemp -d)
trap 'rm -rf "$O"' EXIT
br() { make -C "$BR" O="$O" BR2_EXTERNAL="$HERE" "$@"; }

step "buildroot"
version=$(sed -n 's/^export BR2_VERSION := //p' "$BR/Makefile")
ok "buildroot $version at $BR"
pinned=$(sed -n 's/^BUILDROOT_VERSION = //p' "$HERE/../Makefile")
if [ "$version" = "$pinned" ]; then
	ok "it is the version the top-level Makefile pins ($pinned)"
else
	printf 'note the top-level Makefile pins %s; this is %s\n' "$pinned" "$version"
fi

step "1. make $DEFCONFIG"
br "$DEFCONFIG" >"$O/defconfig.log" 2>&1 || { cat "$O/defconfig.log"; fail "make $DEFCONFIG"; }
ok "make BR2_EXTERNAL=buildroot O=<tmp> $DEFCONFIG"

step "2. every defconfig line is in .config"
lines=0
while IFS= read -r line; do
	case $line in '' | '#'[!\ ]*) continue ;; esac
	case $line in
	'# '*' is not set') ;;
	'#'*) continue ;;
	esac
	lines=$((lines + 1))
	# Kconfig expands nothing: the line must be there as written.
	grep -qxF -- "$line" "$O/.config" || {
		sym=$(sed -E 's/^(# )?(BR2_[A-Za-z0-9_]+).*/\2/' <<<"$line")
		fail "'$line' did not survive into .config, which has: $(grep -E "(^| )${sym}[= ]" "$O/.config" || echo nothing)"
	}
done <"$HERE/configs/$DEFCONFIG"
ok "all $lines lines of configs/$DEFCONFIG are in .config as written"

step "3. savedefconfig round trip"
br savedefconfig BR2_DEFCONFIG="$O/saved_defconfig" >"$O/save.log" 2>&1 || { cat "$O/save.log"; fail "savedefconfig"; }
diff -u "$HERE/configs/$DEFCONFIG" "$O/saved_defconfig" || fail "savedefconfig differs from configs/$DEFCONFIG"
ok "savedefconfig writes configs/$DEFCONFIG back unchanged"

step "4. utils/check-package -b"
# check-package imports python3-magic and flake8, which Debian packages
# for its own python3 (not for one first on PATH, e.g. pyenv's).
py=/usr/bin/python3
. "$(dirname "$HERE")/scripts/lib/host-packages.sh"
ensure_host_packages buildroot-verify || fail "check-package needs the packages above"
mapfile -t files < <(cd "$HERE" && find external.desc external.mk Config.in configs board package -type f | sort)
out=$(cd "$HERE" && "$py" "$BR/utils/check-package" -b "${files[@]}" 2>&1) || { printf '%s\n' "$out"; fail "check-package"; }
# It reports findings as warnings with exit status 0 in some versions.
grep -q '^0 warnings generated' <<<"$out" || { printf '%s\n' "$out"; fail "check-package reported warnings"; }
ok "check-package -b: $(tail -n2 <<<"$out" | paste -sd', ') (${#files[@]} files: ${files[*]})"

step "5. make show-info"
br -s show-info >"$O/info.json" 2>"$O/info.err" || { cat "$O/info.err"; fail "show-info"; }
"$py" - "$O/info.json" <<'PY' || fail "show-info"
import json, sys
info = json.load(open(sys.argv[1]))
want = ["postgresql", "etcd", "haproxy", "systemd", "pgbox", "linux", "host-genimage", "host-rustc", "host-go"]
missing = [p for p in want if p not in info]
if missing:
    sys.exit("FAIL show-info lacks %s" % missing)
for p in want:
    i = info[p]
    if i.get("virtual"):
        what = "virtual, provided by " + ", ".join(
            d for d in i["dependencies"] if d not in ("host-skeleton", "host-tar", "skeleton", "toolchain"))
    elif not i.get("downloads"):
        what = "local source, no download (package/%s)" % p
    else:
        what = ", ".join(d["source"] for d in i["downloads"])
    print("ok   %-14s %-10s %s" % (p, i.get("version") or "-", what))
print("ok   %d packages in the configuration" % len(info))
PY

printf '\nall checks against buildroot %s passed in %ss\n' "$version" "$(($(date +%s) - started))"
