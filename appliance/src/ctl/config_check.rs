use std::path::Path;
use std::process::ExitCode;

/// `pgboxctl config check FILE`.
pub fn run(_file: &Path) -> ExitCode {
    todo!("config check")
}
