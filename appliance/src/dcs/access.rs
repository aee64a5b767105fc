//! How pgboxd gets into etcd: its user and password, the client
//! certificate when etcd runs TLS, and the one-time setup that turns etcd
//! authentication on.
//!
//! etcd starts with authentication off, and its flags cannot turn it on:
//! that takes a `root` user and an `auth enable` request. So the first
//! pgboxd to find etcd open sets it up, idempotently (several may race at
//! bring-up, and a setup cut short by a crash is finished by the next):
//!
//! - `root` (role `root`): the administrator, for `etcdctl` by a person;
//! - role `pgbox`, read and write on this cluster's key prefix only;
//! - user `pgbox` with that role: what every pgboxd connects as;
//! - then authentication on.
//!
//! Both users get `secrets.etcd_password`. Until the setup is done, etcd is
//! open to whoever reaches its client port; that lasts from the members'
//! first start to the first pgboxd's first connection, seconds on a new
//! cluster, and never again.

use anyhow::{anyhow, Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, Permission, TlsOptions};

use crate::config::{Config, TlsPem};

/// The etcd user every pgboxd connects as.
pub const USER: &str = "pgbox";
/// Its role: read and write on the cluster's prefix.
pub const ROLE: &str = "pgbox";
/// etcd's administrator, which must exist before authentication goes on.
pub const ROOT: &str = "root";

/// pgboxd's credentials and TLS settings for etcd.
#[derive(Clone)]
pub struct Access {
    password: String,
    tls: Option<TlsPem>,
    /// The key prefix the `pgbox` role may read and write.
    prefix: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("tls", &self.tls.is_some())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Access {
    pub fn from_config(cfg: &Config) -> Access {
        Access {
            password: cfg.secrets.etcd_password.clone(),
            tls: cfg.etcd.tls.clone(),
            prefix: cfg.key_prefix(),
        }
    }

    /// `base` plus the client certificate and CA when etcd runs TLS.
    fn with_tls(&self, base: ConnectOptions) -> ConnectOptions {
        match &self.tls {
            Some(t) => base.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&t.ca))
                    .identity(Identity::from_pem(&t.certificate, &t.private_key)),
            ),
            None => base,
        }
    }

    /// Options that log in as `pgbox`, renewing the token when it expires.
    pub fn options(&self, base: ConnectOptions) -> ConnectOptions {
        self.with_tls(base)
            .with_user(USER, self.password.clone())
            .with_auto_token_refresh(true)
    }

    /// Connects to `endpoints` as `root` (changing the membership needs
    /// it), or without credentials while authentication is still off.
    pub async fn connect_as_root(
        &self,
        endpoints: &[String],
        base: ConnectOptions,
    ) -> Result<Client> {
        let root = self
            .with_tls(base.clone())
            .with_user(ROOT, self.password.clone());
        match Client::connect(endpoints, Some(root)).await {
            Ok(c) => Ok(c),
            Err(e) if is_auth_not_enabled(&e) => {
                Client::connect(endpoints, Some(self.with_tls(base)))
                    .await
                    .map_err(|e| anyhow!(explain(&e)))
            }
            Err(e) => Err(anyhow!(explain(&e))),
        }
    }

    /// Connects to `endpoint` as `pgbox`. When etcd says authentication is
    /// off, sets it up first (see the module comment) and connects again.
    pub async fn connect(&self, endpoint: &str, base: ConnectOptions) -> Result<Client> {
        match Client::connect([endpoint], Some(self.options(base.clone()))).await {
            Ok(c) => Ok(c),
            Err(e) if is_auth_not_enabled(&e) => {
                tracing::info!(endpoint, "etcd authentication is off; turning it on");
                // Another pgboxd may finish the setup first: this one's
                // unauthenticated requests are then refused, and the second
                // connection below shows whether the setup stands.
                let setup = self.enable_auth(endpoint, base.clone()).await;
                match Client::connect([endpoint], Some(self.options(base))).await {
                    Ok(c) => {
                        if let Err(e) = setup {
                            tracing::debug!(error = %format!("{e:#}"), "etcd authentication was set up by another member");
                        } else {
                            tracing::info!(endpoint, user = USER, "etcd authentication on");
                        }
                        Ok(c)
                    }
                    Err(again) => Err(match setup {
                        Err(setup) => setup.context(format!(
                            "turning on etcd authentication (then logging in as {USER:?}: {})",
                            explain(&again)
                        )),
                        Ok(()) => anyhow!(explain(&again)),
                    }),
                }
            }
            Err(e) => Err(anyhow!(explain(&e))),
        }
    }

    /// The setup, on an unauthenticated connection; each step accepts that
    /// an earlier attempt already made it.
    async fn enable_auth(&self, endpoint: &str, base: ConnectOptions) -> Result<()> {
        let client = Client::connect([endpoint], Some(self.with_tls(base)))
            .await
            .context("connecting without credentials")?;
        let mut auth = client.auth_client();
        let exists = |r: Result<(), etcd_client::Error>, what: &str| match r {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            Err(e) => Err(anyhow!(e).context(what.to_string())),
        };
        exists(auth.role_add(ROOT).await.map(drop), "adding etcd role root")?;
        exists(
            auth.user_add(ROOT, self.password.clone(), None)
                .await
                .map(drop),
            "adding etcd user root",
        )?;
        auth.user_grant_role(ROOT, ROOT)
            .await
            .context("granting role root to user root")?;
        exists(
            auth.role_add(ROLE).await.map(drop),
            "adding etcd role pgbox",
        )?;
        auth.role_grant_permission(
            ROLE,
            Permission::read_write(self.prefix.clone()).with_prefix(),
        )
        .await
        .with_context(|| format!("granting role pgbox read and write on {}", self.prefix))?;
        exists(
            auth.user_add(USER, self.password.clone(), None)
                .await
                .map(drop),
            "adding etcd user pgbox",
        )?;
        auth.user_grant_role(USER, ROLE)
            .await
            .context("granting role pgbox to user pgbox")?;
        auth.auth_enable()
            .await
            .context("enabling etcd authentication")?;
        Ok(())
    }
}

fn is_auth_not_enabled(e: &etcd_client::Error) -> bool {
    e.to_string().contains("authentication is not enabled")
}

/// etcd's refusal of the password, in words that say what to fix.
fn explain(e: &etcd_client::Error) -> String {
    let text = e.to_string();
    if text.contains("invalid user ID or password") {
        format!(
            "etcd refused user {USER:?}'s password ({text}): secrets.etcd_password is not the \
             password this cluster's etcd was set up with; see docs/security.md on rotating it"
        )
    } else {
        text
    }
}
