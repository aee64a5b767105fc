//! `pgboxctl tls init --config FILE --out DIR`: a cluster CA and the API's
//! certificate, made on the operator's workstation, for `api.tls`.
//!
//! The CA's key stays in DIR and never goes into the first-boot file: with
//! it, anyone could issue a certificate the routers and pgboxctl trust.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::config::{self, Role};

/// What `init` writes, by file name: certificates readable by all, keys and
/// the YAML block (which holds the API key) by the owner only.
pub struct Generated {
    pub ca_pem: String,
    pub ca_key: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Generated {
    /// The `api:` block to paste into pgbox.yaml.
    pub fn yaml(&self) -> String {
        let block = |pem: &str| {
            pem.lines()
                .map(|l| format!("      {l}\n"))
                .collect::<String>()
        };
        format!(
            "api:\n  tls:\n    certificate: |\n{}    private_key: |\n{}    ca: |\n{}",
            block(&self.cert_pem),
            block(&self.key_pem),
            block(&self.ca_pem)
        )
    }
}

/// A new CA named after `cluster`, and a certificate for the API at every
/// address in `addresses`, valid for ten years (rotation is described in
/// docs/security.md).
pub fn generate(cluster: &str, addresses: &[IpAddr]) -> Result<Generated, rcgen::Error> {
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

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name
        .push(DnType::CommonName, format!("pgbox cluster {cluster} API"));
    leaf.subject_alt_names = addresses.iter().map(|a| SanType::IpAddress(*a)).collect();
    leaf.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert_pem = leaf.signed_by(&key, &issuer)?.pem();
    Ok(Generated {
        ca_pem,
        ca_key: ca_key_pem,
        cert_pem,
        key_pem: key.serialize_pem(),
    })
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
    let cfg = match config::load(config_file) {
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
    let made = match generate(&cfg.cluster.name, &addresses) {
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
    ];
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
    let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    println!(
        "A CA and an API certificate for {} written to {}.\n\
         Paste api-tls.yaml into pgbox.yaml (it holds the API's private key);\n\
         keep ca.key off the boxes; give pgboxctl --cacert {}.",
        list.join(", "),
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
        let made = generate("main", &addresses).unwrap();
        let text = format!("{}{}", config::tests::GOOD, made.yaml());
        let with_tls = config::parse(&text, "pgbox.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(with_tls.api_scheme(), "https");
        assert!(
            !made.yaml().contains(&made.ca_key),
            "the CA key stays out of the file"
        );
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
        assert_eq!(mode("ca.pem"), 0o644);
        let before = std::fs::read(out.join("ca.key")).unwrap();
        assert_eq!(run(&cfg_file, &out), ExitCode::FAILURE);
        assert_eq!(std::fs::read(out.join("ca.key")).unwrap(), before);
    }
}
