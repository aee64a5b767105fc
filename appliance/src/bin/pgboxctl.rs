//! pgboxctl: the operator's command line for a pgbox cluster.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "pgboxctl", version, about = "Operate a pgbox PostgreSQL cluster")]
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
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate FILE exactly as pgboxd would at boot.
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { command: ConfigCommand::Check { file } } => pgbox::ctl::config_check::run(&file),
        Command::List(args) => pgbox::ctl::list::run(args),
    }
}
