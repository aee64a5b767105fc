//! pgboxd: the supervisor of one pgbox node.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "pgboxd", version, about = "Supervise this node of a pgbox PostgreSQL cluster")]
struct Args {
    /// The first-boot file (pgbox.yaml).
    #[arg(long, short = 'c', env = "PGBOX_CONFIG")]
    config: PathBuf,
    /// Which node of the file this box is (overrides the file's `node:`).
    #[arg(long, env = "PGBOX_NODE")]
    node: Option<String>,
    /// Where PostgreSQL data and pgbox state live.
    #[arg(long, env = "PGBOX_DATA_DIR", default_value = "/var/lib/pgbox")]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    pgbox::logging::init();
    // Validate everything before touching anything: a bad file must leave
    // the data directory exactly as it was.
    let cfg = match pgbox::config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("pgboxd: the first-boot file is invalid; nothing was started or changed:\n{errors}");
            tracing::error!("invalid first-boot file {}: {errors}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let me = match pgbox::config::validate_identity(&cfg, args.node.as_deref()) {
        Ok(me) => me,
        Err(errors) => {
            eprintln!("pgboxd: cannot tell which node this is; nothing was started or changed:\n{errors}");
            tracing::error!("invalid node identity: {errors}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
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
