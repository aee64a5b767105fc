//! Every path the first boot reads or writes, as the running box sees it.
//! `Root` places them under `--root`, so that tests run in a temporary
//! directory; rendered files keep naming the real paths, because they are
//! read on the real box.

use std::path::{Path, PathBuf};

pub const FW_CFG_CONFIG: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/pgbox/config/raw";
pub const FW_CFG_NODE: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/pgbox/node/raw";
pub const CFGPART_CONFIG: &str = "/run/pgbox/cfgpart/pgbox.yaml";
pub const CMDLINE: &str = "/proc/cmdline";

pub const STATE_DIR: &str = "/var/lib/pgbox";
pub const PERSISTED_CONFIG: &str = "/var/lib/pgbox/pgbox.yaml";
/// The node identity in force, kept beside the file: it may have come from
/// outside the file (fw_cfg, kernel command line) and must not change later.
pub const PERSISTED_NODE: &str = "/var/lib/pgbox/node";
pub const ETCD_DATA_DIR: &str = "/var/lib/pgbox/etcd";
/// What `pgboxd etcd-join` leaves for pgbox-etcd.service when this member
/// joins a running cluster.
pub const ETCD_JOIN_ENV: &str = "/run/pgbox/etcd-join.env";

pub const RUN_DIR: &str = "/run/pgbox";
pub const ROLES_DIR: &str = "/run/pgbox/roles";
pub const NODE: &str = "/run/pgbox/node";
pub const PGBOXD_ENV: &str = "/run/pgbox/pgboxd.env";
pub const HOSTNAME: &str = "/run/pgbox/hostname";
pub const ETCD_ENV: &str = "/run/pgbox/etcd.env";
/// systemd's credential store under /run: root only. pgbox-etcd.service
/// imports `pgbox-etcd.*` from it, and etcd reads them from its own
/// credentials directory (`ETCD_CREDENTIALS`).
pub const CREDSTORE: &str = "/run/credstore";
pub const ETCD_CRED_CERT: &str = "/run/credstore/pgbox-etcd.cert";
pub const ETCD_CRED_KEY: &str = "/run/credstore/pgbox-etcd.key";
pub const ETCD_CRED_CA: &str = "/run/credstore/pgbox-etcd.ca";
/// Where systemd puts pgbox-etcd.service's imported credentials.
pub const ETCD_CREDENTIALS: &str = "/run/credentials/pgbox-etcd.service";
pub const HAPROXY_CFG: &str = "/run/pgbox/haproxy.cfg";
pub const HAPROXY_STATE: &str = "/run/pgbox/haproxy-servers.state";
/// The API's CA certificate, for the router's health checks over HTTPS.
pub const HAPROXY_API_CA: &str = "/run/pgbox/api-ca.pem";
pub const NETWORK: &str = "/run/systemd/network/10-pgbox.network";
/// Written only when the box cannot run: DHCP on its Ethernet NICs, so that
/// the reason can be read from its API port.
pub const NETWORK_FALLBACK: &str = "/run/systemd/network/90-pgbox-no-config.network";
/// Present only while the box cannot run: no usable first-boot file.
pub const CONFIG_ERROR: &str = "/run/pgbox/config-error";
/// Present when the box runs but a newer file was not applied.
pub const CONFIG_WARNING: &str = "/run/pgbox/config-warning";

/// The directory every path is taken under (`/` on a real box).
#[derive(Debug, Clone)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: &Path) -> Self {
        Root(dir.to_path_buf())
    }

    /// Whether this is the running system itself, not a directory standing
    /// in for it: only then are live settings (the host name) changed.
    pub fn is_live(&self) -> bool {
        self.0 == Path::new("/")
    }

    pub fn at(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }
}
