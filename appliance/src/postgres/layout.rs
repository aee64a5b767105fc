//! Where the local PostgreSQL lives on the data partition, which binaries
//! run it, and as whom.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Paths under pgboxd's data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    /// PGDATA.
    pub pgdata: PathBuf,
    /// The unix socket directory (pgboxd's own connections use it).
    pub socket_dir: PathBuf,
    /// libpq password file for replication, pg_basebackup and pg_rewind;
    /// keeps passwords out of command lines and primary_conninfo.
    pub passfile: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
            pgdata: root.join("postgres"),
            socket_dir: root.join("run"),
            passfile: root.join("pgpass"),
        }
    }

    /// Where a base backup is written before it replaces PGDATA, so that a
    /// failed clone never leaves a half data directory behind.
    pub fn staging(&self) -> PathBuf {
        self.root.join("postgres.new")
    }

    /// Where a reinitialize keeps the old data directory until the fresh
    /// clone has succeeded.
    pub fn set_aside(&self) -> PathBuf {
        self.root.join("postgres.old")
    }

    pub fn is_initialized(&self) -> bool {
        self.pgdata.join("PG_VERSION").exists()
    }
}

/// The PostgreSQL server binaries.
#[derive(Debug, Clone)]
pub struct Bins {
    pub dir: PathBuf,
}

impl Bins {
    /// `PGBOX_PG_BINDIR` if set, else the newest version under
    /// /usr/lib/postgresql (Debian's layout, also the image's).
    pub fn locate() -> Result<Self> {
        if let Some(dir) = std::env::var_os("PGBOX_PG_BINDIR") {
            let dir = PathBuf::from(dir);
            if !dir.join("postgres").exists() {
                bail!("PGBOX_PG_BINDIR={} has no postgres binary", dir.display());
            }
            return Ok(Bins { dir });
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .context("looking for PostgreSQL under /usr/lib/postgresql (set PGBOX_PG_BINDIR to override)")?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("postgres").exists().then_some((v, bin))
            })
            .collect();
        versions.sort();
        match versions.pop() {
            Some((_, dir)) => Ok(Bins { dir }),
            None => bail!(
                "no PostgreSQL server found under /usr/lib/postgresql/*/bin (set PGBOX_PG_BINDIR)"
            ),
        }
    }

    pub fn get(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// PostgreSQL refuses to run as root: when pgboxd is root, every PostgreSQL
/// program runs as the `postgres` user and the data directory is theirs.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    pub fn detect() -> Result<Option<Self>> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let user = nix::unistd::User::from_name("postgres")
            .context("looking up the postgres user")?
            .context("pgboxd runs as root, so PostgreSQL must run as the `postgres` user, and there is none")?;
        Ok(Some(RunAs {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }))
    }

    pub fn chown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to the postgres user", path.display()))
    }
}
