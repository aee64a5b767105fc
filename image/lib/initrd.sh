# Makes the initrd from the package root ($ROOT, before the trim): klibc's
# sh and tools, kmod's modprobe with its libraries, the modules named in
# initrd/modules with their dependencies, and initrd/init.

build_initrd() {
	# Staged inside the root, so that its depmod and cpio can work on it.
	local st=$ROOT/.initrd kver f names
	kver=$(basename "$(ls -d "$ROOT"/usr/lib/modules/*/)")
	rm -rf "$st"
	mkdir -p "$st"/{bin,dev,proc,sys,run,root,usr/lib64,usr/lib/modules/"$kver"}
	# The same merged-/usr layout as the root, so that library and
	# interpreter paths recorded in the binaries resolve unchanged.
	ln -s usr/lib "$st/lib"
	ln -s usr/lib64 "$st/lib64"
	install -m 0755 "$HERE/initrd/init" "$st/init"
	for f in sh mount run-init sleep mkdir; do
		cp "$ROOT/usr/lib/klibc/bin/$f" "$st/bin/"
	done
	# Libraries of klibc and kmod, as the package root's loader resolves them.
	{
		ls "$ROOT"/usr/lib/klibc-*.so | sed "s|^$ROOT||"
		chroot "$ROOT" ldd /usr/bin/kmod | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'
	} | sort -u | while read -r f; do
		mkdir -p "$st$(dirname "$f")"
		cp -L "$ROOT$f" "$st$f"
	done
	cp "$ROOT/usr/bin/kmod" "$st/bin/kmod"
	ln -s kmod "$st/bin/modprobe"
	# Modules: each named one and what it depends on, as insmod lines.
	mapfile -t names < <(grep -vE '^\s*(#|$)' "$HERE/initrd/modules")
	chroot "$ROOT" modprobe --set-version="$kver" --show-depends --ignore-install -a "${names[@]}" |
		awk '$1 == "insmod" { print $2 }' | sort -u | while read -r f; do
		mkdir -p "$st$(dirname "$f")"
		cp "$ROOT$f" "$st$f"
	done
	cp "$ROOT/usr/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$st/usr/lib/modules/$kver/"
	chroot "$ROOT" depmod -b /.initrd "$kver"
	# The modules are xz inside already; the rest compresses well.
	chroot "$ROOT" sh -c 'cd /.initrd && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --owner=0:0' |
		zstd -q -15 -T0 >"$WORK/kernel/initrd.img"
	info "initrd: $(find "$st" -name '*.ko*' | wc -l) modules, $(human "$(stat -c %s "$WORK/kernel/initrd.img")")"
	rm -rf "$st"
}
