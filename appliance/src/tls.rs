//! TLS for the REST API: the server side (pgboxd), and the client side
//! that trusts the cluster's CA (pgboxd calling its peers, pgboxctl); and
//! the checks of a certificate written in the first-boot file (`api.tls`,
//! `etcd.tls`).
//!
//! rustls with its standard provider (aws-lc-rs), the one reqwest also uses
//! for any client built without our configuration; named explicitly here so
//! that no process-wide default has to be installed first. PEM text is read
//! with `rustls::pki_types` (rustls-pemfile is unmaintained).

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::TlsPem;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Every certificate in `pem`; an error when there is none or one is broken.
pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not readable as PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(
            "holds no certificate; paste the PEM text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----"
                .into(),
        );
    }
    Ok(certs)
}

/// The one private key in `pem`. The message never quotes the text.
/// The subject common name of the first certificate in `pem`: pgBackRest
/// authorizes a client by it (`tls-server-auth`).
pub fn common_name(pem: &str) -> Result<String, String> {
    let certs = certificates(pem)?;
    let first = certs.first().ok_or("no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref())
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .ok_or("the certificate's subject has no common name (CN)")?;
    cn.as_str()
        .map(str::to_string)
        .map_err(|e| format!("the certificate's common name is not text: {e}"))
}

pub fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        "holds no readable private key; paste the PEM text from -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY) to its END line, unencrypted"
            .into()
    })
}

/// The CA certificates as a trust store.
pub fn roots(ca_pem: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in certificates(ca_pem)? {
        store
            .add(cert)
            .map_err(|e| format!("is not a usable CA certificate: {e}"))?;
    }
    Ok(store)
}

/// The API server's TLS configuration. Fails when the key does not belong
/// to the certificate.
pub fn server_config(tls: &TlsPem) -> Result<ServerConfig, String> {
    let certs = certificates(&tls.certificate).map_err(|e| format!("certificate: {e}"))?;
    let key = private_key(&tls.private_key).map_err(|e| format!("private_key: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("private_key: does not fit the certificate ({e})"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration that trusts exactly the CAs in `ca_pem`.
pub fn client_config(ca_pem: &str) -> Result<ClientConfig, String> {
    let roots = roots(ca_pem)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A reqwest client builder that speaks HTTPS trusting only `ca_pem`, or
/// plain HTTP only when there is no CA.
pub fn http_client(ca_pem: Option<&str>) -> Result<reqwest::ClientBuilder, String> {
    let builder = reqwest::Client::builder().no_proxy();
    let config = match ca_pem {
        Some(pem) => client_config(pem)?,
        // Trusting nobody, rather than reqwest's default of the system's
        // CA store: the appliance ships none (reqwest then refuses to build
        // a client at all), and no public CA has any say in this cluster.
        None => ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    Ok(builder.tls_backend_preconfigured(config))
}

/// Where a certificate of the first-boot file serves, for its checks.
pub struct Purpose<'a> {
    /// The section it is written in (`api.tls`, `etcd.tls`), for messages.
    pub section: &'a str,
    /// The nodes that present it, by node name: each address must be
    /// named, as clients verify the address they dial (and etcd checks a
    /// peer's certificate against the address its connection comes from).
    pub servers: &'a [(String, IpAddr)],
    /// Who those nodes are, for the message ("PostgreSQL node").
    pub who: &'a str,
    /// Whether it is also presented as a client certificate (etcd's peers
    /// and pgboxd, under mutual TLS): then its key usage must allow that.
    pub client_auth: bool,
}

/// What is wrong with `tls` for `purpose`, as (field under the section,
/// message) pairs: unreadable PEM, a key that is not the certificate's, a
/// certificate the CA did not sign, one that does not name a server's
/// address, or one not allowed for client authentication where it must be.
pub fn problems(tls: &TlsPem, purpose: &Purpose) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let certs = match certificates(&tls.certificate) {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(("certificate", e));
            None
        }
    };
    if let Err(e) = private_key(&tls.private_key) {
        out.push(("private_key", e));
    } else if certs.is_some() {
        if let Err(e) = server_config(tls) {
            if let Some(rest) = e.strip_prefix("private_key: ") {
                out.push(("private_key", rest.to_string()));
            } else {
                out.push(("certificate", e));
            }
        }
    }
    let roots = match roots(&tls.ca) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            out.push(("ca", e));
            None
        }
    };
    let (Some(certs), Some(roots)) = (certs, roots) else {
        return out;
    };
    let section = purpose.section;
    let verifier =
        match WebPkiServerVerifier::builder_with_provider(roots.clone(), provider()).build() {
            Ok(v) => v,
            Err(e) => {
                out.push(("ca", format!("cannot be used to verify: {e}")));
                return out;
            }
        };
    let (end, intermediates) = certs.split_first().expect("at least one certificate");
    let not_signed = || format!("is not signed by {section}.ca");
    for (name, addr) in purpose.servers {
        let server = ServerName::IpAddress((*addr).into());
        if let Err(e) =
            verifier.verify_server_cert(end, intermediates, &server, &[], UnixTime::now())
        {
            let why = match e {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                | rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. },
                ) => format!(
                    "does not name node {name:?}'s address {addr}; issue it with the address of every {} as an IP subject alternative name",
                    purpose.who
                ),
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
                | rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature) => {
                    not_signed()
                }
                other => format!("fails verification for node {name:?} ({addr}): {other}"),
            };
            out.push(("certificate", why));
            // One message per cause is enough.
            if !out.last().is_some_and(|(_, m)| m.contains("does not name")) {
                return out;
            }
        }
    }
    if purpose.client_auth {
        let client = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| e.to_string());
        let checked = client.and_then(|v| {
            v.verify_client_cert(end, intermediates, UnixTime::now())
                .map_err(|e| match e {
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::InvalidPurpose
                        | rustls::CertificateError::InvalidPurposeContext { .. },
                    ) => "is not allowed for client authentication: its extended key usage lacks clientAuth, and etcd members and pgboxd present it as their client certificate; issue it for both serverAuth and clientAuth (`pgboxctl tls init` does)".to_string(),
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::UnknownIssuer
                        | rustls::CertificateError::BadSignature,
                    ) => not_signed(),
                    other => format!("fails verification as a client certificate: {other}"),
                })
        });
        if let Err(why) = checked {
            out.push(("certificate", why));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod testing {
    //! A throw-away CA and a certificate it signed, for tests.
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

    pub struct TestPki {
        pub ca_pem: String,
        pub cert_pem: String,
        pub key_pem: String,
    }

    /// A CA, and a certificate naming `ips`, for any purpose.
    pub fn pki(ips: &[&str]) -> TestPki {
        pki_with_usage(ips, Vec::new())
    }

    /// A CA, and a certificate naming `ips` with these extended key usages
    /// (none: any purpose).
    pub fn pki_with_usage(ips: &[&str], usage: Vec<rcgen::ExtendedKeyUsagePurpose>) -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pgbox test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.extended_key_usages = usage;
        params.subject_alt_names = ips
            .iter()
            .map(|ip| SanType::IpAddress(ip.parse().unwrap()))
            .collect();
        let cert = params.signed_by(&key, &issuer).unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The appliance ships no CA store. reqwest's default client then
    /// refuses to build ("No CA certificates were loaded from the system"),
    /// which kept pgboxd from starting in the image; ours must build.
    #[test]
    fn the_http_client_needs_no_system_ca_store() {
        // SAFETY: nextest runs each test in a process of its own.
        unsafe {
            std::env::set_var("SSL_CERT_FILE", "/nonexistent/pgbox-test-ca.pem");
            std::env::set_var("SSL_CERT_DIR", "/nonexistent/pgbox-test-certs");
        }
        let default = reqwest::Client::builder().build();
        let ours = super::http_client(None).and_then(|b| b.build().map_err(|e| e.to_string()));
        assert!(ours.is_ok(), "{:?}", ours.err());
        // The condition is real here only where the default builder fails.
        if default.is_ok() {
            eprintln!("note: reqwest's default client built anyway on this host");
        }
    }

    use super::testing::pki;
    use super::*;

    fn tls(p: &testing::TestPki) -> TlsPem {
        TlsPem {
            certificate: p.cert_pem.clone(),
            private_key: p.key_pem.clone(),
            ca: p.ca_pem.clone(),
        }
    }

    fn nodes(list: &[(&str, &str)]) -> Vec<(String, IpAddr)> {
        list.iter()
            .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
            .collect()
    }

    /// The checks as `api.tls` gets them (server only).
    fn problems(t: &TlsPem, servers: &[(String, IpAddr)]) -> Vec<(&'static str, String)> {
        super::problems(
            t,
            &Purpose {
                section: "api.tls",
                servers,
                who: "PostgreSQL node",
                client_auth: false,
            },
        )
    }

    /// The checks as `etcd.tls` gets them (server and client).
    fn mutual_problems(t: &TlsPem, servers: &[(String, IpAddr)]) -> Vec<(&'static str, String)> {
        super::problems(
            t,
            &Purpose {
                section: "etcd.tls",
                servers,
                who: "etcd member",
                client_auth: true,
            },
        )
    }

    #[test]
    fn mutual_tls_needs_a_certificate_allowed_for_clients() {
        let servers = nodes(&[("db1", "10.0.0.11")]);
        // No extended key usage at all: any purpose.
        let any = pki(&["10.0.0.11"]);
        assert!(mutual_problems(&tls(&any), &servers).is_empty());

        let server_only = testing::pki_with_usage(
            &["10.0.0.11"],
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
        );
        assert!(problems(&tls(&server_only), &servers).is_empty());
        let found = mutual_problems(&tls(&server_only), &servers);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "certificate");
        assert!(found[0].1.contains("clientAuth"), "{found:?}");

        let both = testing::pki_with_usage(
            &["10.0.0.11"],
            vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        assert!(mutual_problems(&tls(&both), &servers).is_empty());

        let other = pki(&["10.0.0.11"]);
        let mut wrong_ca = tls(&any);
        wrong_ca.ca = other.ca_pem;
        let found = mutual_problems(&wrong_ca, &servers);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].1.contains("not signed by etcd.tls.ca"),
            "{found:?}"
        );
    }

    #[test]
    fn a_good_certificate_has_no_problems() {
        let p = pki(&["10.0.0.11", "10.0.0.12"]);
        let ok = problems(
            &tls(&p),
            &nodes(&[("db1", "10.0.0.11"), ("db2", "10.0.0.12")]),
        );
        assert!(ok.is_empty(), "{ok:?}");
        server_config(&tls(&p)).unwrap();
        client_config(&p.ca_pem).unwrap();
    }

    #[test]
    fn each_mistake_is_named() {
        let p = pki(&["10.0.0.11"]);
        let found = problems(
            &tls(&p),
            &nodes(&[("db1", "10.0.0.11"), ("db2", "10.0.0.12")]),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "certificate");
        assert!(
            found[0].1.contains("db2") && found[0].1.contains("10.0.0.12"),
            "{found:?}"
        );

        let other = pki(&["10.0.0.11"]);
        let mut wrong_ca = tls(&p);
        wrong_ca.ca = other.ca_pem.clone();
        let found = problems(&wrong_ca, &nodes(&[("db1", "10.0.0.11")]));
        assert!(
            found
                .iter()
                .any(|(f, m)| *f == "certificate" && m.contains("not signed by")),
            "{found:?}"
        );

        let mut wrong_key = tls(&p);
        wrong_key.private_key = other.key_pem.clone();
        let found = problems(&wrong_key, &nodes(&[("db1", "10.0.0.11")]));
        assert!(
            found
                .iter()
                .any(|(f, m)| *f == "private_key" && m.contains("does not fit")),
            "{found:?}"
        );

        let mut garbage = tls(&p);
        garbage.certificate = "hello".into();
        garbage.private_key = "not a key".into();
        garbage.ca = String::new();
        let found = problems(&garbage, &nodes(&[("db1", "10.0.0.11")]));
        let fields: Vec<&str> = found.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["certificate", "private_key", "ca"], "{found:?}");
        assert!(
            !found.iter().any(|(_, m)| m.contains("not a key")),
            "never quotes the key"
        );
    }
}
