use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Config};

/// `pgboxctl config check FILE`: the same checks pgboxd makes at boot.
///
/// Exit status: 0 when the file is valid, 1 when it has problems (each one
/// printed to stderr as `FILE:LINE:COLUMN: PATH: MESSAGE`), 2 when the file
/// cannot be read at all. A valid file's risky settings are printed to
/// stderr as `FILE:LINE:COLUMN: warning: PATH: MESSAGE` and do not change
/// the exit status. Secrets are never printed.
pub fn run(file: &Path) -> ExitCode {
    let source = file.display().to_string();
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{}", config::unreadable(&source, &e));
            return ExitCode::from(2);
        }
    };
    let parsed = config::text_from_bytes(bytes, &source)
        .map_err(config::ConfigErrors::single)
        .and_then(|text| config::check(&text, &source));
    match parsed {
        Ok((cfg, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            println!("{}", summary(&source, &cfg));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            let n = errors.len();
            eprintln!(
                "{source}: {n} problem{} found; nothing would be applied",
                if n == 1 { "" } else { "s" }
            );
            ExitCode::from(1)
        }
    }
}

/// One line a person can compare with what they meant to write.
fn summary(source: &str, cfg: &Config) -> String {
    let nodes: Vec<String> = cfg
        .nodes
        .iter()
        .map(|n| {
            let roles: Vec<&str> = n.roles.iter().map(|r| r.name()).collect();
            format!("{} [{}]", n.name, roles.join(", "))
        })
        .collect();
    let mut line = format!(
        "{source}: OK (cluster {:?}, {} node{}: {}",
        cfg.cluster.name,
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        nodes.join(", ")
    );
    if let Some(node) = &cfg.node {
        line.push_str(&format!("; this file is for node {node}"));
    }
    line.push(')');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_nodes_and_roles_but_no_secret() {
        let text = "\
cluster: {name: main}
nodes:
  - {name: db1, address: 10.0.0.11, roles: [postgres, etcd]}
secrets:
  superuser_password: kq8Vx2mPz4LwT7nB
  replication_password: Rj5tH9cWq2XvN6sD
  app_password: Fz3Lp8Ym1QkB7wGe
  etcd_password: Wm4Hs7Ka2NdR9pXc
etcd: {allow_unsafe_member_count: true}
";
        let cfg = config::parse(text, "x.yaml").unwrap();
        let line = summary("x.yaml", &cfg);
        assert_eq!(
            line,
            "x.yaml: OK (cluster \"main\", 1 node: db1 [postgres, etcd])"
        );
        for secret in ["kq8Vx2mPz4LwT7nB", "Rj5tH9cWq2XvN6sD", "Fz3Lp8Ym1QkB7wGe"] {
            assert!(!line.contains(secret));
        }
    }
}
