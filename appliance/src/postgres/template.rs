//! A data directory made by `initdb` when the image was built, copied into
//! place instead of running `initdb` on the box.
//!
//! Why: `initdb` runs a few hundred SQL scripts through single-user backends
//! and takes about a minute on a small or emulated machine, the largest part
//! of a first boot. Copying a ready directory and setting the superuser's
//! password takes a second or two. The copy is used only when it matches what
//! `initdb` would have made here (same PostgreSQL major version, same
//! superuser name); otherwise pgboxd runs `initdb` as before.
//!
//! Every cluster made from one image build shares the template's system
//! identifier. Within a cluster that is what replication needs anyway; two
//! separate clusters from the same build merely cannot be told apart by it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::layout::RunAs;

/// Where the image keeps the template (on the read-only root).
pub const DEFAULT_DIR: &str = "/usr/lib/pgbox/pgdata-template";
/// Overrides the location; an empty value turns the template off.
pub const ENV: &str = "PGBOX_PGDATA_TEMPLATE";
/// The file in the template saying how it was made, one `key=value` a line.
/// It is not copied into the data directory.
pub const MARKER: &str = "pgbox-template.conf";

/// A template directory and what its marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub dir: PathBuf,
    pub superuser: String,
    pub major: String,
}

/// The configured template directory, if any: `$PGBOX_PGDATA_TEMPLATE`, or
/// the image's default location when it exists.
pub fn configured_dir() -> Option<PathBuf> {
    match std::env::var_os(ENV) {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => Some(PathBuf::from(DEFAULT_DIR)).filter(|d| d.exists()),
    }
}

/// Read a template's marker and PG_VERSION.
pub fn read(dir: &Path) -> Result<Template> {
    let marker = dir.join(MARKER);
    let text = std::fs::read_to_string(&marker)
        .with_context(|| format!("reading {}", marker.display()))?;
    let mut superuser = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some(("superuser", v)) => superuser = Some(v.trim().to_string()),
            Some(_) => {}
            None => bail!("{}:{}: expected key=value", marker.display(), n + 1),
        }
    }
    let superuser =
        superuser.with_context(|| format!("{}: no superuser= line", marker.display()))?;
    let version = dir.join("PG_VERSION");
    let major = std::fs::read_to_string(&version)
        .with_context(|| format!("reading {}", version.display()))?
        .trim()
        .to_string();
    Ok(Template {
        dir: dir.to_path_buf(),
        superuser,
        major,
    })
}

/// Why a template cannot stand in for `initdb` here, if it cannot.
pub fn mismatch(t: &Template, superuser: &str, major: &str) -> Option<String> {
    if t.major != major {
        return Some(format!(
            "it is for PostgreSQL {}, the server here is {major}",
            t.major
        ));
    }
    if t.superuser != superuser {
        return Some(format!(
            "its superuser is {:?}, the first-boot file names {superuser:?}",
            t.superuser
        ));
    }
    None
}

/// Copy the template into `dest` (an existing, empty, private directory):
/// directories and regular files only, permissions kept, everything owned by
/// PostgreSQL's user. The marker stays behind.
pub fn copy_into(t: &Template, dest: &Path, run_as: Option<RunAs>) -> Result<()> {
    copy_dir(&t.dir, dest, run_as, true)
}

fn copy_dir(src: &Path, dest: &Path, run_as: Option<RunAs>, top: bool) -> Result<()> {
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if top && name == MARKER {
            continue;
        }
        let from = entry.path();
        let to = dest.join(&name);
        let meta = std::fs::symlink_metadata(&from)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            std::fs::create_dir(&to).with_context(|| format!("creating {}", to.display()))?;
            copy_dir(&from, &to, run_as, false)?;
        } else if meta.is_file() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        } else {
            bail!(
                "{}: neither a file nor a directory; a data directory template holds only those",
                from.display()
            );
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))?;
        if let Some(r) = run_as {
            r.chown(&to)?;
        }
    }
    Ok(())
}

/// The SQL that gives the superuser its password from the first-boot file,
/// for a single-user backend in `-j` mode (a statement ends with `;` and an
/// empty line). None when the password cannot be written that way.
pub fn set_password_sql(superuser: &str, password: &str) -> Option<String> {
    if password.contains(['\n', '\r', '\0']) || superuser.contains('\0') {
        return None;
    }
    Some(format!(
        "ALTER ROLE \"{}\" PASSWORD '{}';\n\n",
        superuser.replace('"', "\"\""),
        password.replace('\'', "''")
    ))
}

/// Make a template in `dir` (which must not exist) with the same `initdb`
/// options a box uses, as PostgreSQL's user when run as root. The superuser
/// gets a random password that no box keeps: each box sets its own at first
/// boot. Used by the image build (`pgboxd make-pgdata-template`).
pub async fn make(dir: &Path, superuser: &str) -> Result<Template> {
    use tokio::io::AsyncReadExt;

    if dir.exists() {
        bail!("{} already exists; remove it first", dir.display());
    }
    let bins = super::Bins::locate()?;
    let run_as = RunAs::detect()?;
    let parent = dir
        .parent()
        .context("the template needs a parent directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let work = tempfile_dir(parent)?;
    let result = async {
        let data = work.join("data");
        let pwfile = work.join("pw");
        let mut random = [0u8; 24];
        tokio::fs::File::open("/dev/urandom")
            .await?
            .read_exact(&mut random)
            .await?;
        let pw: String = random.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&pwfile, pw)?;
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))?;
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700))?;
        if let Some(r) = run_as {
            r.chown(&work)?;
            r.chown(&pwfile)?;
        }
        let args = super::initdb_args(
            &data.to_string_lossy(),
            superuser,
            &format!("--pwfile={}", pwfile.display()),
        );
        let out = super::tool_command(&bins, run_as, "initdb")
            .args(&args)
            .output()
            .await
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(
            data.join(MARKER),
            format!(
                "# A data directory made by `pgboxd make-pgdata-template`; pgboxd copies it\n\
                 # instead of running initdb when the first-boot file names this superuser.\n\
                 superuser={superuser}\n"
            ),
        )?;
        std::fs::rename(&data, dir)
            .with_context(|| format!("moving the template to {}", dir.display()))?;
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&work);
    result?;
    read(dir)
}

/// A fresh private directory next to where the template goes.
fn tempfile_dir(parent: &Path) -> Result<PathBuf> {
    for i in 0..100u32 {
        let p = parent.join(format!(".pgdata-template.{}.{i}", std::process::id()));
        if std::fs::create_dir(&p).is_ok() {
            return Ok(p);
        }
    }
    bail!("cannot create a work directory in {}", parent.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template_in(dir: &Path, marker: &str, version: &str) -> PathBuf {
        let t = dir.join("tpl");
        std::fs::create_dir_all(t.join("global")).unwrap();
        std::fs::create_dir_all(t.join("pg_wal/archive_status")).unwrap();
        std::fs::write(t.join(MARKER), marker).unwrap();
        std::fs::write(t.join("PG_VERSION"), version).unwrap();
        std::fs::write(t.join("global/pg_control"), b"control").unwrap();
        std::fs::set_permissions(
            t.join("global/pg_control"),
            PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        t
    }

    #[test]
    fn reads_marker_and_version() {
        let d = tempfile::tempdir().unwrap();
        let t = template_in(
            d.path(),
            "# made by the image build\nsuperuser=postgres\n",
            "17\n",
        );
        let got = read(&t).unwrap();
        assert_eq!(got.superuser, "postgres");
        assert_eq!(got.major, "17");
        assert_eq!(mismatch(&got, "postgres", "17"), None);
        assert!(mismatch(&got, "postgres", "16")
            .unwrap()
            .contains("PostgreSQL 17"));
        assert!(mismatch(&got, "admin", "17").unwrap().contains("\"admin\""));
    }

    #[test]
    fn a_marker_without_superuser_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let t = template_in(d.path(), "other=1\n", "17\n");
        let e = read(&t).unwrap_err().to_string();
        assert!(e.contains("no superuser= line"), "{e}");
        let t2 = template_in(&d.path().join("b"), "garbage\n", "17\n");
        let e = read(&t2).unwrap_err().to_string();
        assert!(e.contains(":1: expected key=value"), "{e}");
    }

    #[test]
    fn copy_keeps_modes_and_leaves_the_marker() {
        let d = tempfile::tempdir().unwrap();
        let t = read(&template_in(d.path(), "superuser=postgres\n", "17\n")).unwrap();
        let dest = d.path().join("data");
        std::fs::create_dir(&dest).unwrap();
        copy_into(&t, &dest, None).unwrap();
        assert!(!dest.join(MARKER).exists());
        assert_eq!(
            std::fs::read(dest.join("global/pg_control")).unwrap(),
            b"control"
        );
        let mode = std::fs::metadata(dest.join("global/pg_control"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(dest.join("pg_wal/archive_status").is_dir());
    }

    #[test]
    fn password_sql_quotes_and_refuses_line_breaks() {
        assert_eq!(
            set_password_sql("post\"gres", "it's").unwrap(),
            "ALTER ROLE \"post\"\"gres\" PASSWORD 'it''s';\n\n"
        );
        assert_eq!(set_password_sql("postgres", "a\nb"), None);
    }
}
