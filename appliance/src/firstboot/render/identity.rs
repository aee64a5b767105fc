//! Who this box is, for pgboxd's unit and for the host name.

use super::super::paths;

/// `/run/pgbox/node`: the node's name alone, for scripts.
pub fn node(me: &str) -> String {
    format!("{me}\n")
}

/// `/run/pgbox/pgboxd.env`: pgboxd's unit reads it (`EnvironmentFile=`);
/// pgboxd takes each variable as the matching flag.
pub fn pgboxd_env(me: &str) -> String {
    format!(
        "PGBOX_NODE={me}\nPGBOX_CONFIG={}\nPGBOX_DATA_DIR={}\n",
        paths::PERSISTED_CONFIG,
        paths::STATE_DIR
    )
}

/// `/run/pgbox/hostname`: the node name is a valid host name (validation
/// holds node names to host name rules).
pub fn hostname(me: &str) -> String {
    format!("{me}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_files() {
        assert_eq!(node("db1"), "db1\n");
        assert_eq!(hostname("db1"), "db1\n");
        assert_eq!(
            pgboxd_env("db1"),
            "PGBOX_NODE=db1\nPGBOX_CONFIG=/var/lib/pgbox/pgbox.yaml\nPGBOX_DATA_DIR=/var/lib/pgbox\n"
        );
    }
}
