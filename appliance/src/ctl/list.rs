use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ListArgs {}

/// `pgboxctl list`.
pub fn run(_args: ListArgs) -> ExitCode {
    todo!("list")
}
