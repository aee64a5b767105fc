################################################################################
#
# etcd
#
################################################################################

# The 3.5 series, as in the offline image (Debian's etcd-server 3.5).
ETCD_VERSION = 3.5.33
ETCD_SITE = $(call github,etcd-io,etcd,v$(ETCD_VERSION))
ETCD_LICENSE = Apache-2.0
ETCD_LICENSE_FILES = LICENSE
ETCD_CPE_ID_VENDOR = etcd

# The server is its own Go module in server/ (the repository root is the
# test and tooling module); its go.mod points at the sibling modules of
# the same tree (api, client/pkg, ...) through replace directives, so
# vendoring in server/ takes them from the tarball itself.
ETCD_SUBDIR = server
ETCD_GOMOD = go.etcd.io/etcd/server/v3
ETCD_BIN_NAME = etcd

# pgbox-etcd.service runs etcd as this user, with its data directory on
# the data partition (/var/lib/pgbox/etcd, made by systemd).
define ETCD_USERS
	etcd -1 etcd -1 * - - - etcd member of the pgbox cluster
endef

$(eval $(golang-package))
