//! One empty marker file per role of this node. The image's units carry
//! `ConditionPathExists=/run/pgbox/roles/<role>`, so a box starts exactly
//! the services its roles call for, and none at all without a valid file.

use super::super::paths;
use crate::config::Node;

pub fn markers(node: &Node) -> Vec<String> {
    let mut roles = node.roles.clone();
    roles.sort();
    roles.dedup();
    roles
        .into_iter()
        .map(|r| format!("{}/{}", paths::ROLES_DIR, r.name()))
        .collect()
}
