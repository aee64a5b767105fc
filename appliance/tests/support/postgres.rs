//! A single plain PostgreSQL server, started without pgboxd: the ground truth
//! the workload and the checker are tested against.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::workload::PgTarget;
use super::{mkdir_mode, pg_bin_dir, postgres_user, spawn_logged, wait_until, Proc, TestDir};

pub struct PlainPostgres {
    pub ip: IpAddr,
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    superuser_password: String,
    proc: Option<Proc>,
    /// More `-c name=value` settings for the postmaster.
    pub settings: Vec<String>,
}

impl PlainPostgres {
    /// initdb as the `postgres` user into `<test dir>/<name>`.
    pub fn init(dir: &TestDir, name: &str, ip: IpAddr, port: u16) -> PlainPostgres {
        let user = postgres_user();
        let data = dir.join(name);
        mkdir_mode(&data, 0o700);
        nix::unistd::chown(&data, Some(user.uid), Some(user.gid)).expect("chown data dir");
        let superuser_password = super::strong_secret("su");
        let pwfile = dir.join(format!("{name}.pw"));
        fs::write(&pwfile, format!("{superuser_password}\n")).expect("write pwfile");
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600)).unwrap();
        nix::unistd::chown(&pwfile, Some(user.uid), Some(user.gid)).unwrap();

        let out = Command::new(pg_bin_dir().join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .current_dir(dir.path())
            .output()
            .expect("run initdb");
        fs::write(
            dir.join(format!("{name}-initdb.log")),
            [&out.stdout[..], &out.stderr[..]].concat(),
        )
        .ok();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = fs::remove_file(&pwfile);

        // The client's source address on loopback is whatever the kernel
        // picks inside 127.0.0.0/8, not necessarily 127.0.0.1.
        let hba = data.join("pg_hba.conf");
        let mut text = fs::read_to_string(&hba).expect("read pg_hba.conf");
        text.push_str("\nhost all all 127.0.0.0/8 scram-sha-256\n");
        fs::write(&hba, text).expect("write pg_hba.conf");

        let log = dir.log_file(name);
        PlainPostgres {
            ip,
            port,
            data,
            log,
            superuser_password,
            proc: None,
            settings: Vec::new(),
        }
    }

    /// A data directory made some other way (a restore), owned by the
    /// `postgres` user already, whose superuser has `superuser_password`.
    /// Its pg_hba.conf is replaced: password logins from loopback only.
    pub fn adopt(
        dir: &TestDir,
        name: &str,
        data: PathBuf,
        ip: IpAddr,
        port: u16,
        superuser_password: &str,
    ) -> PlainPostgres {
        let hba = "local all all scram-sha-256\nhost all all 127.0.0.0/8 scram-sha-256\n";
        fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        PlainPostgres {
            ip,
            port,
            data,
            log: dir.log_file(name),
            superuser_password: superuser_password.to_string(),
            proc: None,
            settings: Vec::new(),
        }
    }

    /// Starts the postmaster and waits until it accepts a query.
    pub async fn start(&mut self) {
        assert!(self.proc.is_none(), "postgres already running");
        let user = postgres_user();
        let mut cmd = Command::new(pg_bin_dir().join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-c")
            .arg(format!("listen_addresses={}", self.ip))
            .arg("-c")
            .arg(format!("port={}", self.port))
            // No socket in a shared /var/run/postgresql: TCP only.
            .arg("-c")
            .arg("unix_socket_directories=");
        for setting in &self.settings {
            cmd.arg("-c").arg(setting);
        }
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        self.proc = Some(spawn_logged("postgres", &mut cmd, &self.log));
        let target = self.superuser("postgres");
        let proc = self.proc.as_ref().unwrap();
        wait_until(
            Duration::from_secs(120),
            "postgres to accept connections",
            async || {
                if let Some(status) = proc.exit_status() {
                    panic!("postgres exited during start-up: {status}");
                }
                let client = target.connect().await?;
                client
                    .simple_query("SELECT 1")
                    .await
                    .map_err(|e| super::error_chain(&e))?;
                Ok(())
            },
        )
        .await;
    }

    /// Crash: SIGKILL to the postmaster and all its children.
    pub fn kill(&mut self) -> Instant {
        self.proc
            .take()
            .expect("postgres is not running")
            .kill_tree()
    }

    pub fn superuser(&self, dbname: &str) -> PgTarget {
        PgTarget {
            hosts: vec![self.ip],
            port: self.port,
            user: "postgres".into(),
            password: self.superuser_password.clone(),
            dbname: dbname.into(),
            read_write: false,
        }
    }

    /// Creates a login role owning a database of the same name, the shape
    /// pgboxd gives its app user.
    pub async fn create_app(&self, user: &str, password: &str) -> PgTarget {
        let client = self
            .superuser("postgres")
            .connect()
            .await
            .expect("connect as superuser");
        client
            .batch_execute(&format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'"))
            .await
            .expect("create app role");
        // Its own statement: CREATE DATABASE refuses to run in the implicit
        // transaction of a multi-statement query.
        client
            .batch_execute(&format!("CREATE DATABASE {user} OWNER {user}"))
            .await
            .expect("create app database");
        PgTarget {
            hosts: vec![self.ip],
            port: self.port,
            user: user.into(),
            password: password.into(),
            dbname: user.into(),
            read_write: true,
        }
    }
}
