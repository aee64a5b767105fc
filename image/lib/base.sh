# The cached stages of the build: the tools root and the package root.
# Each is rebuilt only when its key (the inputs that shape it) changes;
# this file is part of the package root's key, so editing it rebuilds it.

# The image tools come from trixie, not from the build host: Debian 12's
# systemd-repart (252) has neither --offline nor Minimize=, and ukify is
# not packaged there at all.
TOOLS_PACKAGES=systemd-repart,systemd-ukify,systemd-boot-efi,python3-pefile,erofs-utils,dosfstools,mtools,e2fsprogs

# mmdebstrap keeps the .debs it fetched in $CACHE/debs (or
# $PGBOX_IMAGE_DEB_CACHE: a download cache shared by several checkouts, as
# CI's fresh clones), so a rebuild after a change of package list or hooks
# downloads only what is new. Only downloads are shared: the roots are
# always built from them.
DEBS=${PGBOX_IMAGE_DEB_CACHE:-$CACHE/debs}
mmdebstrap_cached() {
	mkdir -p "$DEBS"
	nice mmdebstrap --mode=root --variant=minbase --skip=essential/unlink \
		--aptopt='APT::Install-Recommends "false"' \
		--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
		--setup-hook="sync-in $DEBS /var/cache/apt/archives/" \
		--customize-hook="sync-out /var/cache/apt/archives $DEBS" \
		"$@"
}

build_tools() {
	local key; key=$(cache_key "$TOOLS_PACKAGES" "$SUITE")
	TOOLS=$CACHE/tools-$key
	if [ -x "$TOOLS/usr/bin/systemd-repart" ]; then
		info "cached: $TOOLS"
		return
	fi
	rm -rf "$CACHE"/tools-* "$CACHE/tools.tmp"
	mmdebstrap_cached --include="$TOOLS_PACKAGES" "$SUITE" "$CACHE/tools.tmp" "$MIRROR" \
		>"$CACHE/tools.log" 2>&1 || { tail -n 30 "$CACHE/tools.log"; die "building the tools root failed (log: $CACHE/tools.log)"; }
	mv "$CACHE/tools.tmp" "$TOOLS"
	info "$(chroot "$TOOLS" systemd-repart --version | head -n1); $(chroot "$TOOLS" ukify --version)"
}

# The package root: minbase plus packages.list. Stored as a tar so that
# every build starts from the same pristine tree.
build_base() {
	local key pkgs
	key=$(cache_key "$SUITE" "$HERE/packages.list" "$HERE/initramfs" "$HERE/lib/base.sh")
	BASE=$CACHE/base-$key.tar
	if [ -f "$BASE" ]; then
		info "cached: $BASE"
		return
	fi
	pkgs=$(grep -vE '^\s*(#|$)' "$HERE/packages.list" | paste -sd, -)
	rm -f "$CACHE"/base-*.tar "$CACHE/base.tmp.tar"
	info "packages: $pkgs"
	mmdebstrap_cached --include="$pkgs" \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--setup-hook='mkdir -p "$1/etc/postgresql-common"' \
		--setup-hook='echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.conf"' \
		--setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
		--setup-hook="copy-in $HERE/initramfs/pgbox.conf /etc/initramfs-tools/conf.d/" \
		--customize-hook='chroot "$1" dpkg-query -W -f="\${binary:Package}\t\${Version}\n" > "$1/.packages"' \
		"$SUITE" "$CACHE/base.tmp.tar" "$MIRROR" \
		>"$CACHE/base.log" 2>&1 || { tail -n 30 "$CACHE/base.log"; die "building the package root failed (log: $CACHE/base.log)"; }
	mv "$CACHE/base.tmp.tar" "$BASE"
	info "$(wc -l < <(tar -xOf "$BASE" ./.packages)) packages, $(human "$(stat -c %s "$BASE")") tar"
}
