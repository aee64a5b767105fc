//! pgboxctl: the operator's command line for a pgbox cluster.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pgboxctl",
    version,
    about = "Operate a pgbox PostgreSQL cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a first-boot file (pgbox.yaml) before flashing it.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// List the cluster's members: host, role, state, timeline, lag.
    List(pgbox::ctl::list::ListArgs),
    /// The members as a replication tree: the leader, then the replicas
    /// that stream from it (patronictl topology).
    Topology(pgbox::ctl::list::ListArgs),
    /// One node's own view: role, state, timeline, lag, lease, watchdog,
    /// last decision, DCS reachability (default: this box's API).
    Status(pgbox::ctl::list::ListArgs),
    /// Hand the primary role to a replica with no lost write (planned).
    Switchover {
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
        /// The member to promote (default: the best synchronous/streaming replica).
        #[arg(long)]
        candidate: Option<String>,
        /// Not before this time (RFC 3339, e.g. 2026-12-01T02:00:00Z).
        #[arg(long)]
        scheduled: Option<String>,
    },
    /// Promote a member of a leaderless cluster (may lose writes it lacks).
    Failover {
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
        #[arg(long)]
        candidate: String,
    },
    /// Maintenance mode: no automatic action until `resume`.
    Pause {
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// Leave maintenance mode.
    Resume {
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// Remove a scheduled event before it fires: `switchover`, or
    /// `restart` (of the members named, or all).
    Flush {
        /// What to remove.
        #[arg(value_parser = ["switchover", "restart"])]
        what: String,
        /// For `restart`: the members (default: all).
        members: Vec<String>,
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// Restart PostgreSQL on the members named (default: all), one at a
    /// time, each in its role: a primary keeps the leader key.
    Restart {
        members: Vec<String>,
        #[command(flatten)]
        args: pgbox::ctl::ops::RestartArgs,
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// Make PostgreSQL on the members named (default: all) read its
    /// configuration files again.
    Reload {
        members: Vec<String>,
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// Replace a replica's data with a fresh clone from the leader (the
    /// old data is kept until the clone succeeds).
    Reinit {
        #[arg(required = true)]
        members: Vec<String>,
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// The cluster-wide settings (the DCS config key, as in force).
    ShowConfig {
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// Change cluster-wide settings and PostgreSQL parameters on every
    /// member; the change is checked whole and refused whole.
    EditConfig {
        #[command(flatten)]
        args: pgbox::ctl::ops::EditArgs,
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// The timeline switches of the cluster.
    History {
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// Take a backup now (incremental; --full for a full one) on the
    /// backup node, and wait for it to finish.
    Backup {
        /// A full backup instead of an incremental one.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// The backups the repository holds, with sizes, and the range a
    /// restore can reach.
    Backups {
        #[command(flatten)]
        target: pgbox::ctl::ops::Target,
    },
    /// HTTPS for the REST API.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make a cluster CA and an API certificate naming every PostgreSQL
    /// node's address, and the `api.tls` block for pgbox.yaml.
    Init {
        /// The first-boot file whose nodes the certificate names.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// An empty (or new) directory for the files; nothing is overwritten.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate FILE exactly as pgboxd would at boot.
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => pgbox::ctl::config_check::run(&file),
        Command::List(args) => pgbox::ctl::list::run(args),
        Command::Topology(args) => pgbox::ctl::list::run_topology(args),
        Command::Status(args) => pgbox::ctl::status::run(args),
        Command::Switchover {
            target,
            candidate,
            scheduled,
        } => pgbox::ctl::ops::switchover(target, candidate, scheduled),
        Command::Failover { target, candidate } => pgbox::ctl::ops::failover(target, candidate),
        Command::Pause { target } => pgbox::ctl::ops::pause(target, true),
        Command::Resume { target } => pgbox::ctl::ops::pause(target, false),
        Command::Flush {
            what,
            members,
            target,
        } => match what.as_str() {
            "restart" => pgbox::ctl::ops::flush_restart(target, members),
            _ => pgbox::ctl::ops::flush_switchover(target),
        },
        Command::Restart {
            members,
            args,
            target,
        } => pgbox::ctl::ops::restart(target, members, args),
        Command::Reload { members, target } => pgbox::ctl::ops::reload(target, members),
        Command::Reinit { members, target } => pgbox::ctl::ops::reinit(target, members),
        Command::History { target } => pgbox::ctl::ops::history(target),
        Command::Backup { full, target } => pgbox::ctl::backup::backup(target, full),
        Command::Backups { target } => pgbox::ctl::backup::backups(target),
        Command::ShowConfig { target } => pgbox::ctl::ops::show_config(target),
        Command::EditConfig { args, target } => pgbox::ctl::ops::edit_config(target, args),
        Command::Tls {
            command: TlsCommand::Init { config, out },
        } => pgbox::ctl::tls_init::run(&config, &out),
    }
}
