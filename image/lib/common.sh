# Shared by build.sh and smoke-test.sh.

MIRROR_DEFAULT=http://deb.debian.org/debian
SUITE=trixie

step_started=0
build_started=$(date +%s)

step() {
	local now; now=$(date +%s)
	if [ "$step_started" -ne 0 ]; then
		printf '    (%ss)\n' "$((now - step_started))"
	fi
	step_started=$now
	printf '==> [%4ss] %s\n' "$((now - build_started))" "$*"
}

info() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The mirror this machine already uses for Debian, so a build reaches
# nothing else; trixie is served from the same place.
detect_mirror() {
	local uri
	uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
	echo "${uri:-$MIRROR_DEFAULT}"
}

# A short digest of files and strings: the key of a cached build stage.
cache_key() {
	local f
	for f in "$@"; do
		if [ -d "$f" ]; then
			(cd "$f" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
		elif [ -f "$f" ]; then
			sha256sum < "$f"
		else
			printf '%s\n' "$f"
		fi
	done | sha256sum | cut -c1-16
}

human() { numfmt --to=iec --suffix=B "$1"; }

# Runs a command in the root directory $1 with /proc, /sys and /dev, and
# with $BIND (if set) bind-mounted at the same path inside, so that paths
# mean the same inside and out. The mounts live in a private namespace and
# vanish with the command.
in_chroot() {
	local dir=$1; shift
	unshare --mount --propagation private -- /bin/sh -ec '
		t=$1; w=$2; shift 2
		mount -t proc proc "$t/proc"
		mount --rbind /dev "$t/dev"
		mount --rbind /sys "$t/sys"
		if [ -n "$w" ]; then mkdir -p "$t$w"; mount --bind "$w" "$t$w"; fi
		exec chroot "$t" "$@"
	' in_chroot "$dir" "${BIND:-}" "$@"
}

in_tools() { BIND=$WORK in_chroot "$TOOLS" "$@"; }
