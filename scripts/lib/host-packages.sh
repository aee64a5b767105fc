# shellcheck shell=bash
# Installs the Debian packages a script needs, from one list
# (scripts/host-packages.list). Sourced by every script that needs a host
# tool; bash only.
#
#   . scripts/lib/host-packages.sh
#   ensure_host_packages build image     # install what is missing, or fail at once
#   host_packages_missing test           # print the missing packages, install nothing
#   host_packages_removable              # what .ci/run removes: installed, not machine/base
#
# A package counts as present only when what the scripts really use is there
# (the file, the command, the Python module), not when dpkg says so. Each
# failure names the package and what was missing.

HOST_PACKAGES_LIST=${HOST_PACKAGES_LIST:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/host-packages.list}

# Lines of the list as "package probe groups flag", comments dropped.
_host_packages_rows() {
	[ -r "$HOST_PACKAGES_LIST" ] || { echo "host-packages: $HOST_PACKAGES_LIST is missing" >&2; return 1; }
	grep -vE '^[[:space:]]*(#|$)' "$HOST_PACKAGES_LIST"
}

# True when the probe holds: cmd:NAME, file:PATH, glob:PATTERN,
# syspy:MOD[,MOD] (importable by Debian's /usr/bin/python3).
host_probe() {
	local kind=${1%%:*} what=${1#*:}
	case $kind in
	cmd) PATH=$PATH:/usr/sbin:/sbin command -v "$what" >/dev/null 2>&1 ;;
	file) [ -e "$what" ] ;;
	glob) compgen -G "$what" >/dev/null ;;
	syspy) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import $what" >/dev/null 2>&1 ;;
	*) echo "host-packages: unknown probe '$1' in $HOST_PACKAGES_LIST" >&2; return 2 ;;
	esac
}

# The packages of the given groups whose probe fails, one per line.
host_packages_missing() {
	local pkg probe groups flag g want
	_host_packages_rows | while read -r pkg probe groups flag; do
		want=0
		for g in "$@"; do [[ ",$groups," == *",$g,"* ]] && want=1; done
		[ "$want" -eq 1 ] || continue
		host_probe "$probe" || echo "$pkg"
	done
}

# What is installed of the list and may be removed to reproduce a fresh
# machine: neither "machine" (the machines come with it) nor "base" (every
# Debian has it), plus the packages that own the probed files (postgresql
# is a metapackage: postgresql-15 owns the binaries). A package whose removal
# would take anything else of the machine with it is kept, and said so on
# stderr.
host_packages_removable() {
	local pkg probe groups flag path
	local -a set
	mapfile -t set < <(_host_packages_rows | while read -r pkg probe groups flag; do
		[ "$flag" = - ] || continue
		dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' && echo "$pkg"
		case ${probe%%:*} in
		file) path=${probe#*:} ;;
		glob) path=$(compgen -G "${probe#*:}" | head -n1) || continue ;;
		*) continue ;;
		esac
		[ -e "$path" ] || continue
		dpkg-query -S "$path" 2>/dev/null | cut -d: -f1 | tr ',' '\n' | sed 's/ //g'
	done | sort -u)
	local extra
	for pkg in "${set[@]}"; do
		extra=$(apt-get -s purge "$pkg" 2>/dev/null | awk '$1 == "Purg" { print $2 }' |
			grep -vxF -f <(printf '%s\n' "${set[@]}") | paste -sd' ' || true)
		if [ -n "$extra" ]; then
			echo "host-packages: keeping $pkg: removing it would also remove $extra" >&2
			continue
		fi
		echo "$pkg"
	done
}

_host_apt() {
	local log
	log=$(mktemp)
	if ! DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		rm -f "$log"
		echo "host-packages: 'apt-get $*' failed (its last lines are above)" >&2
		return 1
	fi
	rm -f "$log"
}

# QEMU's packages must agree: qemu-system-x86 depends on
# qemu-system-common of its own version, and when the installed qemu-utils
# is of another release (bookworm-backports, say, with no such source
# configured), apt resolves the conflict by *removing* qemu-utils. So the
# emulator comes at the version of the installed qemu-utils when apt has
# it, and otherwise both come together at the emulator's version.
_host_qemu_pins() {
	local have cand
	have=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
	cand=$(apt-cache madison qemu-system-x86 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
	if [ -z "$have" ]; then
		echo qemu-system-x86 qemu-utils
	elif grep -qxF "$have" <<<"$cand"; then
		echo "qemu-system-x86=$have"
	else
		local v
		v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
		if [ -z "$v" ] || [ "$v" = "(none)" ]; then
			echo "host-packages: apt offers no qemu-system-x86" >&2
			return 1
		fi
		echo "host-packages: qemu-utils $have has no qemu-system-x86 of its release in apt's sources; installing both at $v" >&2
		echo "qemu-system-x86=$v" "qemu-utils=$v"
	fi
}

# Installs what the groups need and is missing, in one apt-get call, then
# checks every probe again. Exits (returns 1) with the package named when
# anything is still missing.
ensure_host_packages() {
	local -a absent install
	mapfile -t absent < <(host_packages_missing "$@")
	[ ${#absent[@]} -gt 0 ] || return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages: ${absent[*]} (for: $*). Install them (apt-get install ${absent[*]}) or run as root." >&2
		return 1
	fi
	local p qemu=0
	for p in "${absent[@]}"; do
		case $p in
		qemu-system-x86 | qemu-utils) qemu=1 ;;
		*) install+=("$p") ;;
		esac
	done
	if [ "$qemu" -eq 1 ]; then
		# shellcheck disable=SC2207 # words by design
		install+=($(_host_qemu_pins)) || return 1
	fi
	echo "==> installing Debian packages: ${install[*]}" >&2
	# The packaged services (etcd, haproxy, a PostgreSQL cluster) must not
	# start at install time: the tests and the benchmark start their own.
	if [[ " ${install[*]} " == *" postgresql"* ]]; then
		mkdir -p /etc/postgresql-common
		grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
			echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
	fi
	local policy_made=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy_made=1
	fi
	local rc=0
	_host_apt update -q || rc=1
	[ "$rc" -ne 0 ] || _host_apt install -y -q --no-install-recommends --allow-downgrades "${install[@]}" || rc=1
	[ "$policy_made" -eq 0 ] || rm -f /usr/sbin/policy-rc.d
	[ "$rc" -eq 0 ] || return 1
	local still
	still=$(host_packages_missing "$@" | paste -sd' ')
	if [ -n "$still" ]; then
		echo "host-packages: installed, but still missing what these provide: $still (see $HOST_PACKAGES_LIST for what is checked)" >&2
		return 1
	fi
	for p in etcd haproxy; do
		systemctl disable --now "$p.service" >/dev/null 2>&1 || true
	done
}
