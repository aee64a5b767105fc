//! pgboxd: the supervisor of one pgbox node.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Without a subcommand, pgboxd supervises this node (the daemon); the
/// daemon's flags stay at the top level so that `pgboxd --config F --node N`
/// keeps working as it always has.
#[derive(Parser)]
#[command(
    name = "pgboxd",
    version,
    about = "Supervise this node of a pgbox PostgreSQL cluster",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[derive(clap::Args)]
struct DaemonArgs {
    /// The first-boot file (pgbox.yaml).
    #[arg(long, short = 'c', env = "PGBOX_CONFIG", required = true)]
    config: Option<PathBuf>,
    /// Which node of the file this box is (overrides the file's `node:`).
    #[arg(long, env = "PGBOX_NODE")]
    node: Option<String>,
    /// Where PostgreSQL data and pgbox state live.
    #[arg(long, env = "PGBOX_DATA_DIR", default_value = "/var/lib/pgbox")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// At boot: find the first-boot file (QEMU fw_cfg, the PGBOXCFG
    /// partition, the kernel command line), validate it, keep it in
    /// /var/lib/pgbox and render what the services of this node need under
    /// /run. Exit status 2: no valid file, nothing started or changed.
    Firstboot {
        /// Take every path under this directory instead of / (for tests and
        /// for preparing an image); the host name is set only with /.
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// On a box whose first-boot file is unusable: answer every request on
    /// the API port with 503 and the validation error (see
    /// pgbox-config-error.service).
    ConfigErrorApi {
        /// Where to listen.
        #[arg(long, default_value = "0.0.0.0:8008")]
        listen: std::net::SocketAddr,
        /// The error first boot wrote.
        #[arg(long, default_value = "/run/pgbox/config-error")]
        file: PathBuf,
    },
    /// Before etcd starts (pgbox-etcd.service): a member whose data
    /// directory is empty while the running cluster lists it as a member
    /// that has run (its box was flashed again) is removed and added back
    /// as a new member; the settings etcd then needs go to `--out`
    /// (removed when etcd starts as usual).
    EtcdJoin {
        #[arg(long, default_value = pgbox::firstboot::paths::PERSISTED_CONFIG)]
        config: PathBuf,
        /// This box's node name; by default the one first boot kept.
        #[arg(long)]
        node: Option<String>,
        #[arg(long, default_value = pgbox::firstboot::paths::ETCD_DATA_DIR)]
        data_dir: PathBuf,
        #[arg(long, default_value = pgbox::firstboot::paths::ETCD_JOIN_ENV)]
        out: PathBuf,
    },
    /// On the node with the role `backup`: hold the pgBackRest repository,
    /// run pgBackRest's TLS server for the PostgreSQL nodes' WAL, take the
    /// scheduled backups and answer `pgboxctl backup` / `backups` on the
    /// API port.
    Repository {
        #[arg(long, short = 'c', env = "PGBOX_CONFIG", default_value = pgbox::firstboot::paths::PERSISTED_CONFIG)]
        config: PathBuf,
        /// This box's node name; by default the one first boot kept.
        #[arg(long, env = "PGBOX_NODE")]
        node: Option<String>,
        /// Where the repository and pgBackRest's files live.
        #[arg(long, env = "PGBOX_DATA_DIR", default_value = "/var/lib/pgbox")]
        data_dir: PathBuf,
        /// pgboxd's data directory on the PostgreSQL nodes (`{node}` stands
        /// for a node's name when they differ).
        #[arg(long, default_value = "/var/lib/pgbox")]
        member_data_dir: String,
    },
    /// For the image build: make a PostgreSQL data directory with the
    /// options every box uses, which a box copies at its first boot instead
    /// of running initdb (it then sets its own superuser password).
    MakePgdataTemplate {
        /// Where to put it (must not exist).
        dir: PathBuf,
        /// The superuser name the template is made for.
        #[arg(long, default_value = "postgres")]
        superuser: String,
    },
}

/// Runs a one-shot subcommand's future to completion; its error goes to
/// stderr under the subcommand's name.
fn run_subcommand<T>(
    name: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Option<T> {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(work));
    result.map_err(|e| eprintln!("pgboxd {name}: {e:#}")).ok()
}

fn make_template(dir: &std::path::Path, superuser: &str) -> ExitCode {
    let work = pgbox::postgres::template::make(dir, superuser);
    let Some(t) = run_subcommand("make-pgdata-template", work) else {
        return ExitCode::FAILURE;
    };
    println!(
        "data directory template for PostgreSQL {} (superuser {}) in {}",
        t.major,
        t.superuser,
        t.dir.display()
    );
    ExitCode::SUCCESS
}

fn etcd_join(
    config: &std::path::Path,
    node: Option<String>,
    data_dir: &std::path::Path,
    out: &std::path::Path,
) -> ExitCode {
    let cfg = match pgbox::config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgboxd etcd-join: {e}");
            return ExitCode::from(2);
        }
    };
    let node = node.or_else(|| {
        std::fs::read_to_string(pgbox::firstboot::paths::PERSISTED_NODE)
            .ok()
            .map(|n| n.trim().to_string())
    });
    let name = match pgbox::config::validate_identity(&cfg, node.as_deref()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("pgboxd etcd-join: {e}");
            return ExitCode::from(2);
        }
    };
    let me = cfg.node_named(&name).expect("validated").clone();
    let work = pgbox::dcs::membership::plan(&cfg, &me, data_dir);
    let Some(plan) = run_subcommand("etcd-join", work) else {
        return ExitCode::FAILURE;
    };
    let written = match plan.env_file() {
        Some(text) => std::fs::write(out, text),
        None => match std::fs::remove_file(out) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    if let Err(e) = written {
        eprintln!("pgboxd etcd-join: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    match plan {
        pgbox::dcs::membership::JoinPlan::Join { replaced, .. } => println!(
            "etcd member {name} joins the running cluster{}",
            replaced.map_or(String::new(), |id| format!(
                " (its stale entry {id:x} removed)"
            ))
        ),
        pgbox::dcs::membership::JoinPlan::FromData => {
            println!("etcd member {name} restarts from its data")
        }
        pgbox::dcs::membership::JoinPlan::AsConfigured => {
            println!(
                "etcd member {name}: no other member answers; starting as the first-boot file says"
            )
        }
    }
    ExitCode::SUCCESS
}

/// The first-boot file and this node's name, validated before anything is
/// touched: a bad file must leave the data directory exactly as it was.
fn load(
    config: &std::path::Path,
    node: Option<&str>,
) -> Result<(pgbox::config::Config, String), ExitCode> {
    let cfg = match pgbox::config::load_checked(config) {
        Ok((c, warnings)) => {
            for w in &warnings {
                tracing::warn!("{w}");
            }
            c
        }
        Err(errors) => {
            eprintln!(
                "pgboxd: the first-boot file is invalid; nothing was started or changed:\n{errors}"
            );
            tracing::error!("invalid first-boot file {}: {errors}", config.display());
            return Err(ExitCode::from(2));
        }
    };
    match pgbox::config::validate_identity(&cfg, node) {
        Ok(me) => Ok((cfg, me)),
        Err(errors) => {
            eprintln!(
                "pgboxd: cannot tell which node this is; nothing was started or changed:\n{errors}"
            );
            tracing::error!("invalid node identity: {errors}");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::EtcdJoin {
        config,
        node,
        data_dir,
        out,
    }) = &cli.cmd
    {
        return etcd_join(config, node.clone(), data_dir, out);
    }
    if let Some(Cmd::Firstboot { root }) = cli.cmd {
        // Plain lines on stdout/stderr: the unit sends them to the journal
        // and the console, where a person at the box looks.
        return ExitCode::from(pgbox::firstboot::run(&root));
    }
    if let Some(Cmd::MakePgdataTemplate { dir, superuser }) = &cli.cmd {
        return make_template(dir, superuser);
    }
    if let Some(Cmd::ConfigErrorApi { listen, file }) = &cli.cmd {
        let serve = pgbox::firstboot::error_api::serve(file, *listen);
        return match run_subcommand("config-error-api", serve) {
            Some(()) => ExitCode::SUCCESS,
            None => ExitCode::FAILURE,
        };
    }
    if let Some(Cmd::Repository {
        config,
        node,
        data_dir,
        member_data_dir,
    }) = cli.cmd
    {
        pgbox::logging::init();
        let node = node.or_else(|| {
            std::fs::read_to_string(pgbox::firstboot::paths::PERSISTED_NODE)
                .ok()
                .map(|n| n.trim().to_string())
        });
        let (cfg, me) = match load(&config, node.as_deref()) {
            Ok(loaded) => loaded,
            Err(code) => return code,
        };
        let me = cfg.node_named(&me).expect("validated").clone();
        let work = pgbox::backup::repository::run(cfg, me, data_dir, member_data_dir);
        return match run_subcommand("repository", work) {
            Some(()) => ExitCode::SUCCESS,
            None => ExitCode::FAILURE,
        };
    }
    let args = cli.daemon;
    let Some(config) = args.config else {
        // clap requires --config on this path; kept as a guard.
        eprintln!("pgboxd: --config is required");
        return ExitCode::from(2);
    };
    pgbox::logging::init();
    let (cfg, me) = match load(&config, args.node.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgboxd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        tracing::info!(node = %me, cluster = %cfg.cluster.name, "pgboxd {} starting", env!("CARGO_PKG_VERSION"));
        pgbox::daemon::Daemon::new(cfg, &me, args.data_dir)?.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("pgboxd failed: {e:#}");
            eprintln!("pgboxd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pgboxd").chain(args.iter().copied()))
    }

    #[test]
    fn daemon_flags_and_the_firstboot_subcommand() {
        Cli::command().debug_assert();

        let cli = parse(&["--config", "f.yaml", "--node", "db1", "--data-dir", "/d"]).unwrap();
        assert!(cli.cmd.is_none());
        assert_eq!(cli.daemon.config, Some(PathBuf::from("f.yaml")));
        assert_eq!(cli.daemon.node.as_deref(), Some("db1"));
        assert_eq!(cli.daemon.data_dir, PathBuf::from("/d"));

        let Some(Cmd::Firstboot { root }) = parse(&["firstboot"]).unwrap().cmd else {
            panic!("no subcommand")
        };
        assert_eq!(root, PathBuf::from("/"));
        let Some(Cmd::Firstboot { root }) =
            parse(&["firstboot", "--root", "/tmp/box"]).unwrap().cmd
        else {
            panic!("no subcommand")
        };
        assert_eq!(root, PathBuf::from("/tmp/box"));

        // The daemon's flags belong to the daemon only.
        assert!(parse(&["--config", "f.yaml", "firstboot"]).is_err());
        assert!(parse(&["firstboot", "--node", "db1"]).is_err());
    }
}
