# The from-source image, built with buildroot and the BR2_EXTERNAL tree in
# buildroot/ (docs/buildroot.md). The offline image, from Debian packages,
# is built by image/build.sh and needs none of this.
#
#   make buildroot-image     download buildroot, configure, build build/buildroot-output/images/pgbox.img
#   make help                the other targets

# The pinned buildroot release (the 2026.02 long-term series), fetched with
# git and checked against the commit its tag named when it was pinned: a
# commit ID is a hash of the whole tree, so a moved tag or a tampered
# mirror fails the check.
BUILDROOT_VERSION = 2026.02.3
BUILDROOT_COMMIT = 679b9ead7620bbf193620d1ebf56f53c1764d37a
BUILDROOT_GIT ?= https://gitlab.com/buildroot.org/buildroot.git

BUILD ?= $(CURDIR)/build
# A copy of buildroot of your own (checked out at the tag above) can be
# given instead: make BUILDROOT_DIR=/path/to/buildroot buildroot-image
BUILDROOT_DIR ?= $(BUILD)/buildroot-$(BUILDROOT_VERSION)
BUILDROOT_OUT ?= $(BUILD)/buildroot-output
# Downloads, kept between builds; the same directory serves as an offline
# source mirror (docs/buildroot.md).
BR2_DL_DIR ?= $(BUILD)/dl
export BR2_DL_DIR
DEFCONFIG ?= pgbox_x86_64_defconfig

BR_MAKE = $(MAKE) -C $(BUILDROOT_DIR) O=$(BUILDROOT_OUT) BR2_EXTERNAL=$(CURDIR)/buildroot

.PHONY: help buildroot-fetch buildroot-config buildroot-image buildroot-source \
	buildroot-menuconfig buildroot-savedefconfig buildroot-check buildroot-verify

help:
	@echo 'Buildroot targets (the from-source image; see docs/buildroot.md):'
	@echo '  buildroot-image          fetch buildroot $(BUILDROOT_VERSION), configure $(DEFCONFIG), build'
	@echo '                           -> $(BUILDROOT_OUT)/images/pgbox.img'
	@echo '  buildroot-fetch          only fetch and check buildroot into $(BUILDROOT_DIR)'
	@echo '  buildroot-config         only configure $(BUILDROOT_OUT) with $(DEFCONFIG)'
	@echo '  buildroot-source         download every source into $(BR2_DL_DIR) (for an offline mirror)'
	@echo '  buildroot-menuconfig     change the configuration'
	@echo '  buildroot-savedefconfig  write it back to buildroot/configs/$(DEFCONFIG)'
	@echo '  buildroot-check          buildroot/check-offline.sh (no buildroot needed)'
	@echo '  buildroot-verify         buildroot/verify-with-buildroot.sh against $(BUILDROOT_DIR)'
	@echo 'Variables: BUILD=$(BUILD) BUILDROOT_DIR BUILDROOT_OUT BR2_DL_DIR DEFCONFIG'

# The build directory holds downloads and outputs, never sources: keep it
# out of git.
$(BUILD)/.gitignore:
	mkdir -p $(BUILD)
	echo '*' >$@

buildroot-fetch: $(BUILDROOT_DIR)/.pgbox-checked

$(BUILDROOT_DIR)/.pgbox-checked: | $(BUILD)/.gitignore
	@if [ -d $(BUILDROOT_DIR)/.git ] || [ ! -e $(BUILDROOT_DIR) ]; then :; else \
		echo "$(BUILDROOT_DIR) exists but is not a git checkout; remove it or set BUILDROOT_DIR"; exit 1; fi
	@if [ ! -d $(BUILDROOT_DIR)/.git ]; then \
		rm -rf $(BUILDROOT_DIR).tmp && \
		git clone --quiet --depth 1 --branch $(BUILDROOT_VERSION) $(BUILDROOT_GIT) $(BUILDROOT_DIR).tmp && \
		mv $(BUILDROOT_DIR).tmp $(BUILDROOT_DIR); fi
	@commit=$$(git -C $(BUILDROOT_DIR) rev-parse HEAD) && \
		if [ "$$commit" != $(BUILDROOT_COMMIT) ]; then \
			echo "buildroot $(BUILDROOT_VERSION) is commit $$commit, expected $(BUILDROOT_COMMIT): refusing it"; exit 1; fi
	@if [ -n "$$(git -C $(BUILDROOT_DIR) status --porcelain --untracked-files=no)" ]; then \
		echo "$(BUILDROOT_DIR) has local changes: refusing it"; exit 1; fi
	@echo "buildroot $(BUILDROOT_VERSION) at $(BUILDROOT_COMMIT): checked"
	@touch $@

buildroot-config: buildroot-fetch
	$(BR_MAKE) $(DEFCONFIG)

buildroot-image: buildroot-config
	$(BR_MAKE)
	@echo "image: $(BUILDROOT_OUT)/images/pgbox.img"

buildroot-source: buildroot-config
	$(BR_MAKE) source

buildroot-menuconfig: buildroot-fetch
	$(BR_MAKE) menuconfig

buildroot-savedefconfig: buildroot-fetch
	$(BR_MAKE) savedefconfig BR2_DEFCONFIG=$(CURDIR)/buildroot/configs/$(DEFCONFIG)

buildroot-check:
	buildroot/check-offline.sh

buildroot-verify: buildroot-fetch
	buildroot/verify-with-buildroot.sh $(BUILDROOT_DIR)
