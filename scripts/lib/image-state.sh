# shellcheck shell=bash
# Whether image/out/ holds a complete image built from the current sources,
# and whether the five-VM results are about that image. Sourced by
# qemu-tests/run.sh and scripts/test.sh (bash); REPO must be set.

# Prints why the image must be (re)built, or nothing when it is current.
# With "raw", the flashable pgbox.img.zst is required too.
image_stale_reason() {
	local f files=(pgbox.qcow2 vmlinuz initrd.img cmdline.txt)
	[ "${1:-}" = raw ] && files+=(pgbox.img.zst)
	for f in "${files[@]}"; do
		[ -f "$REPO/image/out/$f" ] || { echo "image/out/$f is missing"; return; }
	done
	[ "${PGBOX_VMTEST_REUSE_IMAGE:-0}" != 1 ] || return 0
	local newer
	newer=$(cd "$REPO" && find appliance/src appliance/Cargo.toml Cargo.lock systemd image scripts/host-packages.list \
		\( -path image/out -o -path image/cache -o -path image/smoke \) -prune -o \
		-type f -newer image/out/pgbox.qcow2 -print -quit)
	[ -z "$newer" ] || echo "$newer is newer than the image"
}

# Prints those of the named scenarios that qemu-tests/out/results.json does
# not show passed in a run that booted the image now in image/out/ (all of
# them when there is no such run).
vm_scenarios_not_passed() {
	local results=$REPO/qemu-tests/out/results.json
	if ! [ -f "$results" ] || ! [ -f "$REPO/image/out/pgbox.qcow2" ]; then
		echo "$@"
		return
	fi
	python3 - "$results" "$(stat -c %Y "$REPO/image/out/pgbox.qcow2")" "$@" <<'PY'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    doc = {}
passed = set()
if doc.get("image_mtime_unix") == int(sys.argv[2]):
    passed = {s["name"] for s in doc.get("scenarios", []) if s.get("passed")}
print(" ".join(s for s in sys.argv[3:] if s not in passed))
PY
}
