################################################################################
#
# pgbox
#
################################################################################

# The workspace this BR2_EXTERNAL tree belongs to, built as it is on disk
# (uncommitted changes included), like the offline image's cargo build.
PGBOX_SITE = $(BR2_EXTERNAL_PGBOX_PATH)/..
PGBOX_SITE_METHOD = local
PGBOX_LICENSE = Apache-2.0
# The crate with pgboxd and pgboxctl; Cargo.lock is the workspace's.
PGBOX_SUBDIR = appliance

# etcd-client compiles etcd's protobuf definitions at build time.
PGBOX_DEPENDENCIES = host-protobuf
PGBOX_CARGO_ENV = PROTOC=$(HOST_DIR)/bin/protoc

# Build outputs of the workspace, and this tree's own output directory
# when it sits inside the workspace (the top-level Makefile puts it in
# build/), are not sources: copying them would be slow or recursive.
PGBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/target --exclude=/build --exclude=/buildroot/output \
	--exclude=/image/cache --exclude=/image/out \
	--exclude=/qemu-tests/run --exclude=/qemu-tests/out \
	--exclude=/bench/out --exclude=/bench/.venv

# Buildroot vendors the crates of a cargo package after downloading its
# tarball, but a local package is copied, not downloaded, so that step
# never runs. Do the same vendoring here, before the build: the crates
# go to $(DL_DIR)/br-cargo-home like those of downloaded packages, the
# build itself then runs with --offline, and with BR2_PRIMARY_SITE_ONLY
# (an offline mirror) the vendoring uses only what that directory holds.
define PGBOX_VENDOR_CRATES
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	cd $(@D) && $(HOST_MAKE_ENV) CARGO_HOME=$(BR_CARGO_HOME) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor --locked $(if $(BR2_PRIMARY_SITE_ONLY),--offline) \
			--manifest-path $(PGBOX_SUBDIR)/Cargo.toml VENDOR \
		> $(@D)/.cargo/config.toml
endef
PGBOX_PRE_CONFIGURE_HOOKS += PGBOX_VENDOR_CRATES

# HAProxy's package installs no systemd unit; the router role's drop-in
# (systemd/haproxy.service.d/pgbox.conf) extends this one.
ifeq ($(BR2_PACKAGE_HAPROXY),y)
define PGBOX_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(PGBOX_PKGDIR)/haproxy.service \
		$(TARGET_DIR)/usr/lib/systemd/system/haproxy.service
endef
endif

# The router's configuration (rendered by pgboxd firstboot) drops
# HAProxy's privileges to this user.
define PGBOX_USERS
	haproxy -1 haproxy -1 * - - - HAProxy, the pgbox router
endef

$(eval $(cargo-package))
