# Trims the package root ($ROOT) to what the appliance runs. The package
# database is used here one last time and then removed with dpkg itself.

# Packages whose files are build-time machinery only: initrd tools (the
# image's initrd is made before the trim, lib/initrd.sh), Debian's maintainer-script languages and
# configuration tools, the package managers themselves, and PostgreSQL's
# cluster wrappers (pgboxd runs /usr/lib/postgresql/17/bin directly).
BUILD_ONLY_PACKAGES="initramfs-tools initramfs-tools-core initramfs-tools-bin klibc-utils libklibc
cpio dracut-install zstd linux-base
perl perl-modules-5.40 libperl5.40 libjson-perl
debconf adduser ucf sensible-utils
apt libapt-pkg7.0 gpgv sqv debian-archive-keyring
postgresql-common postgresql-common-dev postgresql-client-common
ssl-cert openssl locales
libllvm19 libz3-4"

# Removes the files (not directories) named on stdin, relative to $ROOT.
remove_listed() {
	local f
	while IFS= read -r f; do
		if [ -f "$ROOT$f" ] || [ -L "$ROOT$f" ]; then rm -f "$ROOT$f"; fi
	done
}

# Files of the packages above, plus perl-base's interpreter (Essential, so
# listed apart) and the JIT: with llvmjit.so gone PostgreSQL simply has no
# JIT, which an OLTP appliance does not miss, and LLVM is half the root.
trim_packages() {
	local p files
	files=$(mktemp)
	for p in $BUILD_ONLY_PACKAGES; do
		chroot "$ROOT" dpkg-query -L "$p" 2>/dev/null || true
	done >"$files"
	# Keep the license texts of what stays installed.
	grep -v '^/usr/share/doc/' "$files" | remove_listed
	rm -f "$files"
	rm -rf "$ROOT"/usr/bin/perl* "$ROOT"/usr/lib/x86_64-linux-gnu/perl* "$ROOT"/usr/share/perl*
	rm -rf "$ROOT"/usr/lib/postgresql/*/lib/llvmjit* "$ROOT"/usr/lib/postgresql/*/lib/bitcode
}

# psql and friends were links to postgresql-common's perl wrapper: point them
# at the real programs.
relink_postgres_clients() {
	local bin name
	bin=$(cd "$ROOT" && ls -d usr/lib/postgresql/*/bin | sort -V | tail -n1)
	for name in psql pg_isready pg_dump pg_dumpall pg_restore pg_basebackup; do
		[ -e "$ROOT/$bin/$name" ] || continue
		ln -sfn "/$bin/$name" "$ROOT/usr/bin/$name"
	done
	# Dangling links left by the wrapper's removal, judged inside the root
	# (absolute links would otherwise resolve against the build host).
	chroot "$ROOT" find /usr/bin /usr/sbin -xtype l -delete
}

trim_kernel_modules() {
	local dir kver keep total
	dir=$(ls -d "$ROOT"/usr/lib/modules/*/ | head -n1)
	kver=$(basename "$dir")
	keep=$(mktemp)
	total=$(grep -c . "$dir/modules.dep")
	# modules.dep lists each module's dependencies transitively, so one pass
	# over it closes the set.
	grep -vE '^\s*(#|$|-)' "$HERE/kernel-modules.list" | awk '
		NR == FNR { prefix[++n] = "kernel/" $1; next }
		{
			mod = $1; sub(/:$/, "", mod)
			for (i = 1; i <= n; i++) {
				p = prefix[i]
				if (index(mod, p) == 1 && (length(mod) == length(p) || substr(mod, length(p) + 1, 1) == "/" || p ~ /\.ko$/)) {
					print mod; for (j = 2; j <= NF; j++) print $j; break
				}
			}
		}' - "$dir/modules.dep" | sort -u |
		grep -vF -f <(sed -n 's/^-\(.*\)/kernel\/\1/p' "$HERE/kernel-modules.list"; echo '//none//') >"$keep"
	(cd "$dir" && find kernel -name '*.ko*' | sort) | comm -23 - "$keep" | (cd "$dir" && xargs -r rm -f)
	find "$dir/kernel" -type d -empty -delete
	chroot "$ROOT" depmod -a "$kver"
	info "kernel modules kept: $(wc -l <"$keep") of $total ($(du -sh "$dir" | cut -f1))"
	rm -f "$keep"
	rm -rf "$ROOT"/usr/lib/firmware
}

trim_files() {
	# Documentation, translations, completions, headers, static libraries.
	find "$ROOT/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
	find "$ROOT/usr/share/doc" -type d -empty -delete 2>/dev/null || true
	rm -rf "$ROOT"/usr/share/{man,info,locale,i18n,lintian,bug,bash-completion,zsh,fish,menu,gdb,gcc,pixmaps,icons,applications,polkit-1,dbus-1,debconf,pkgconfig}
	rm -rf "$ROOT"/usr/include "$ROOT"/usr/lib/x86_64-linux-gnu/pkgconfig
	find "$ROOT/usr/lib" -name '*.a' -delete
	# Locales: C.UTF-8 is built into glibc and is what initdb uses.
	find "$ROOT/usr/lib/locale" -mindepth 1 -maxdepth 1 ! -name C.utf8 -exec rm -rf {} +
	# udev's hardware database only adds descriptive properties (vendor
	# names, keyboard maps); device links and interface names do not use it.
	rm -rf "$ROOT"/usr/lib/udev/hwdb.bin "$ROOT"/usr/lib/udev/hwdb.d "$ROOT"/etc/udev/hwdb.d
	rm -rf "$ROOT"/usr/lib/systemd/catalog
	# udev rules for desktop hardware and logins (sound, cameras, input
	# seats, MTD flash, ...): every device event at boot runs through all
	# rules, and some start helper programs (memory, iocost).
	(cd "$ROOT/usr/lib/udev/rules.d" && rm -f 60-autosuspend.rules 60-cdrom_id.rules 60-drm.rules \
		60-evdev.rules 60-fido-id.rules 60-infiniband.rules 60-input-id.rules 60-persistent-alsa.rules \
		60-persistent-input.rules 60-persistent-storage-mtd.rules 60-persistent-storage-tape.rules \
		60-persistent-v4l.rules 60-sensor.rules 60-serial.rules 64-btrfs.rules 70-camera.rules \
		70-joystick.rules 70-memory.rules 70-mouse.rules 70-power-switch.rules 70-touchpad.rules \
		70-uaccess.rules 71-seat.rules 73-seat-late.rules 75-net-description.rules 75-probe_mtd.rules \
		78-sound-card.rules 90-iocost.rules)
	(cd "$ROOT/usr/lib/udev" && rm -f cdrom_id dmi_memory_id fido_id iocost mtd_probe v4l_id)
	# Generators that each cost a process at every boot for features the
	# box does not have: SysV scripts, rc.local, hibernation, offline
	# updates, ssh, TPM-unlocked disks, discoverable-partition mounts
	# (the root and data mounts are explicit).
	rm -f "$ROOT"/usr/lib/systemd/system-generators/{postgresql-generator,systemd-sysv-generator,systemd-rc-local-generator,systemd-hibernate-resume-generator,systemd-system-update-generator,systemd-ssh-generator,systemd-tpm2-generator,systemd-gpt-auto-generator,systemd-run-generator}
	rm -rf "$ROOT"/etc/init.d "$ROOT"/etc/rc?.d "$ROOT"/etc/cron.* "$ROOT"/etc/logrotate.d
	# etcd's offline backup/restore tool; the member itself is /usr/bin/etcd.
	rm -f "$ROOT/usr/bin/etcdutl"
	# A private key generated at build time would be the same on every box.
	rm -f "$ROOT"/etc/ssl/private/ssl-cert-snakeoil.key "$ROOT"/etc/ssl/certs/ssl-cert-snakeoil.pem
	# The build host's resolver and name, copied in by the bootstrap.
	rm -f "$ROOT"/etc/resolv.conf
	# The kernel and initrd travel in the UKI (and image/out for direct boot).
	rm -rf "$ROOT"/boot/* "$ROOT"/vmlinuz* "$ROOT"/initrd.img*
}

# /var is a tmpfs at run time: whatever is in the image's /var is never seen.
# The package database goes with it; its list survives as a manifest.
finish_package_state() {
	install -D -m 0644 "$ROOT/.packages" "$ROOT/usr/share/pgbox/packages.txt"
	rm -f "$ROOT/.packages"
	chroot "$ROOT" dpkg-query -L dpkg | grep -v '^/usr/share/doc/' | remove_listed
	rm -rf "$ROOT"/etc/apt "$ROOT"/etc/dpkg "$ROOT"/usr/lib/apt "$ROOT"/usr/lib/dpkg
	find "$ROOT/var" -mindepth 1 -delete
}
