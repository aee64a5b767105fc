//! `pgboxctl tls init --config FILE --out DIR`: a cluster CA and two
//! certificates it signs, made on the operator's workstation: the API's,
//! for `api.tls`, and etcd's, for `etcd.tls` (server and client: etcd runs
//! mutual TLS, and pgboxd presents it as its client certificate).
//!
//! The CA's key stays in DIR and never goes into the first-boot file: with
//! it, anyone could issue a certificate the routers and pgboxctl trust.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::config::{self, Role};

/// What `init` writes, by file name: certificates readable by all, keys and
/// the YAML block (which holds the API key) by the owner only.
pub struct Generated {
    pub ca_pem: String,
    pub ca_key: String,
    /// The API's certificate and key.
    pub cert_pem: String,
    pub key_pem: String,
    /// etcd's certificate and key.
    pub etcd_cert_pem: String,
    pub etcd_key_pem: String,
    /// pgBackRest's certificate and key (server and client), when the
    /// cluster has a backup node.
    pub backup_cert_pem: Option<String>,
    pub backup_key_pem: Option<String>,
}

impl Generated {
    /// The `api:` block to paste into pgbox.yaml.
    pub fn yaml(&self) -> String {
        self.block("api", &self.cert_pem, &self.key_pem)
    }

    /// The `etcd:` block to paste into pgbox.yaml.
    pub fn etcd_yaml(&self) -> String {
        self.block("etcd", &self.etcd_cert_pem, &self.etcd_key_pem)
    }

    /// The `backup:` section's `tls:` block (the section's other settings
    /// go beside it), when there is a backup certificate.
    pub fn backup_yaml(&self) -> Option<String> {
        Some(self.block(
            "backup",
            self.backup_cert_pem.as_ref()?,
            self.backup_key_pem.as_ref()?,
        ))
    }

    fn block(&self, section: &str, cert: &str, key: &str) -> String {
        let pem = |pem: &str| {
            pem.lines()
                .map(|l| format!("      {l}\n"))
                .collect::<String>()
        };
        format!(
            "{section}:\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
            pem(cert),
            pem(key),
            pem(&self.ca_pem)
        )
    }
}

/// A new CA named after `cluster`, a certificate for the API at every
/// address in `api`, and one for etcd at every address in `etcd`, valid
/// for ten years (rotation is described in docs/security.md).
pub fn generate(cluster: &str, api: &[IpAddr], etcd: &[IpAddr]) -> Result<Generated, rcgen::Error> {
    generate_with_backup(cluster, api, etcd, &[])
}

/// As `generate`, and when `backup` is not empty a certificate for
/// pgBackRest at every address in it (the PostgreSQL nodes and the backup
/// node).
pub fn generate_with_backup(
    cluster: &str,
    api: &[IpAddr],
    etcd: &[IpAddr],
    backup: &[IpAddr],
) -> Result<Generated, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, format!("pgbox cluster {cluster} CA"));
    ca.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    // `names_as_dns`: pgBackRest before 2.53 matched only DNS names against
    // the host it dials, so its certificate names each address that way too.
    let leaf = |common_name: String,
                addresses: &[IpAddr],
                usage: Vec<ExtendedKeyUsagePurpose>,
                names_as_dns: bool| {
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name
            .push(DnType::CommonName, common_name);
        leaf.subject_alt_names = addresses.iter().map(|a| SanType::IpAddress(*a)).collect();
        if names_as_dns {
            for a in addresses {
                leaf.subject_alt_names
                    .push(SanType::DnsName(rcgen::string::Ia5String::try_from(
                        a.to_string(),
                    )?));
            }
        }
        leaf.extended_key_usages = usage;
        leaf.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = leaf.signed_by(&key, &issuer)?.pem();
        Ok::<_, rcgen::Error>((cert, key.serialize_pem()))
    };
    // Not user names etcd knows: under mutual TLS etcd would take a client
    // certificate's common name as the user it acts for.
    let (cert_pem, key_pem) = leaf(
        format!("pgbox cluster {cluster} API"),
        api,
        vec![ExtendedKeyUsagePurpose::ServerAuth],
        false,
    )?;
    let (etcd_cert_pem, etcd_key_pem) = leaf(
        format!("pgbox cluster {cluster} etcd"),
        etcd,
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        false,
    )?;
    let (backup_cert_pem, backup_key_pem) = if backup.is_empty() {
        (None, None)
    } else {
        // pgBackRest authorizes a client by this name, written
        // `tls-server-auth=NAME=stanza`: one word reads safest there.
        let (c, k) = leaf(
            format!("pgbox-{cluster}-backup"),
            backup,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            true,
        )?;
        (Some(c), Some(k))
    };
    Ok(Generated {
        ca_pem,
        ca_key: ca_key_pem,
        cert_pem,
        key_pem,
        etcd_cert_pem,
        etcd_key_pem,
        backup_cert_pem,
        backup_key_pem,
    })
}

/// Every address etcd's certificate names: the members'. Clients check the
/// address they dial, and a member checks a peer's certificate against the
/// address the peer's connection comes from. (etcd does not check a client
/// certificate's addresses, so pgboxd and `etcdctl` may use it from any.)
pub fn etcd_addresses(cfg: &config::Config) -> Vec<IpAddr> {
    cfg.nodes_with(Role::Etcd).map(|n| n.address).collect()
}

/// Every address pgBackRest's certificate names: the PostgreSQL nodes'
/// and the backup node's (each runs pgBackRest's TLS server, and each
/// dials the others). None when no node has the role `backup`.
pub fn backup_addresses(cfg: &config::Config) -> Vec<IpAddr> {
    if cfg.nodes_with(Role::Backup).next().is_none() {
        return Vec::new();
    }
    cfg.nodes
        .iter()
        .filter(|n| n.roles.contains(&Role::Postgres) || n.roles.contains(&Role::Backup))
        .map(|n| n.address)
        .collect()
}

/// Writes `text` to a new file (never over an existing one) with `mode`.
fn create(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(text.as_bytes())
}

pub fn run(config_file: &Path, out: &Path) -> ExitCode {
    let cfg = match config::load_for_certificates(config_file) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!(
                "pgboxctl tls init: cannot use {}:\n{errors}",
                config_file.display()
            );
            return ExitCode::from(2);
        }
    };
    let addresses: Vec<IpAddr> = cfg.nodes_with(Role::Postgres).map(|n| n.address).collect();
    let etcd = etcd_addresses(&cfg);
    let backup = backup_addresses(&cfg);
    let made = match generate_with_backup(&cfg.cluster.name, &addresses, &etcd, &backup) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pgboxctl tls init: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("pgboxctl tls init: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let files = [
        ("ca.pem", made.ca_pem.clone(), 0o644),
        ("ca.key", made.ca_key.clone(), 0o600),
        ("api.pem", made.cert_pem.clone(), 0o644),
        ("api.key", made.key_pem.clone(), 0o600),
        ("api-tls.yaml", made.yaml(), 0o600),
        ("etcd.pem", made.etcd_cert_pem.clone(), 0o644),
        ("etcd.key", made.etcd_key_pem.clone(), 0o600),
        ("etcd-tls.yaml", made.etcd_yaml(), 0o600),
    ];
    let mut files = files.to_vec();
    if let (Some(cert), Some(key), Some(yaml)) = (
        &made.backup_cert_pem,
        &made.backup_key_pem,
        made.backup_yaml(),
    ) {
        files.push(("backup.pem", cert.clone(), 0o644));
        files.push(("backup.key", key.clone(), 0o600));
        files.push(("backup-tls.yaml", yaml, 0o600));
    }
    for (name, text, mode) in &files {
        let path = out.join(name);
        if let Err(e) = create(&path, text, *mode) {
            eprintln!(
                "pgboxctl tls init: {}: {e} (nothing is overwritten; choose an empty --out)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let list = |a: &[IpAddr]| {
        a.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !backup.is_empty() {
        println!(
            "A pgBackRest certificate for {}: paste the tls block of backup-tls.yaml into pgbox.yaml's backup: section.",
            list(&backup)
        );
    }
    println!(
        "A CA, an API certificate for {} and an etcd certificate for {} written to {}.\n\
         Paste the tls blocks of api-tls.yaml and etcd-tls.yaml into pgbox.yaml's api: and etcd:\n\
         sections (they hold private keys); keep ca.key off the boxes; give pgboxctl --cacert {}.",
        list(&addresses),
        list(&etcd),
        out.display(),
        out.join("ca.pem").display()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `init` makes is accepted by the same validation pgboxd runs.
    #[test]
    fn generated_material_validates() {
        let cfg = config::parse(config::tests::GOOD, "pgbox.yaml").unwrap();
        let addresses: Vec<IpAddr> = cfg.nodes_with(Role::Postgres).map(|n| n.address).collect();
        let made = generate("main", &addresses, &etcd_addresses(&cfg)).unwrap();
        let text = format!("{}{}{}", config::tests::GOOD, made.yaml(), made.etcd_yaml());
        let with_tls = config::parse(&text, "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(with_tls.api_scheme(), "https");
        assert!(with_tls
            .etcd_endpoints()
            .iter()
            .all(|u| u.starts_with("https://")));
        assert!(!made.etcd_yaml().contains(&made.ca_key));
        assert!(
            !made.yaml().contains(&made.ca_key),
            "the CA key stays out of the file"
        );
    }

    /// The documented order: a file with its backup node and a `backup:`
    /// section still without `tls:`; `init` makes the certificate, and the
    /// file with the block pasted in is accepted.
    #[test]
    fn init_makes_the_backup_certificate_a_file_still_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_file = dir.path().join("pgbox.yaml");
        let text = format!(
            "{}backup:\n  archive_timeout: 30s\n",
            config::tests::GOOD.replace("roles: [etcd, router]", "roles: [etcd, router, backup]")
        );
        std::fs::write(&cfg_file, &text).unwrap();
        let e = config::load(&cfg_file).unwrap_err();
        assert!(e.to_string().contains("has no `tls:`"), "{e}");
        let out = dir.path().join("tls");
        assert_eq!(run(&cfg_file, &out), ExitCode::SUCCESS);
        let block = std::fs::read_to_string(out.join("backup-tls.yaml")).unwrap();
        // The block's `backup:` line is the section's own: paste what is under it.
        let under = block.strip_prefix("backup:\n").unwrap();
        let whole = format!("{text}{under}");
        let cfg = config::parse(&whole, "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.backup.unwrap().tls.is_some());
    }

    #[test]
    fn init_writes_private_files_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cfg_file = dir.path().join("pgbox.yaml");
        std::fs::write(&cfg_file, config::tests::GOOD).unwrap();
        let out = dir.path().join("tls");
        assert_eq!(run(&cfg_file, &out), ExitCode::SUCCESS);
        let mode = |name: &str| {
            std::fs::metadata(out.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(mode("api.key"), 0o600);
        assert_eq!(mode("api-tls.yaml"), 0o600);
        assert_eq!(mode("etcd.key"), 0o600);
        assert_eq!(mode("etcd-tls.yaml"), 0o600);
        assert_eq!(mode("ca.pem"), 0o644);
        let before = std::fs::read(out.join("ca.key")).unwrap();
        assert_eq!(run(&cfg_file, &out), ExitCode::FAILURE);
        assert_eq!(std::fs::read(out.join("ca.key")).unwrap(), before);
    }
}
