//! A first-boot file as a tree of values, changed by edits the fuzzer
//! chooses, and written back as block-style YAML.
//!
//! Random bytes rarely get past the YAML parser and the schema's types;
//! edits of a valid file do, and so reach the semantic validation and
//! everything that reads an accepted file.

use arbitrary::Arbitrary;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// `plain` writes it unquoted, so YAML's own typing of it applies
    /// (`on`, `10s`, `0x1F`, `1e3` ...).
    Str {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// Keys and values the schema knows, so that edits hit real fields with
/// values of nearly the right kind.
pub const WORDS: &[&str] = &[
    "cluster",
    "name",
    "node",
    "nodes",
    "address",
    "roles",
    "mac",
    "tags",
    "nofailover",
    "noloadbalance",
    "failover_priority",
    "secrets",
    "superuser_password",
    "replication_password",
    "app_password",
    "etcd_password",
    "api_password",
    "postgres",
    "etcd",
    "router",
    "ha",
    "ttl",
    "loop_wait",
    "maximum_lag_on_failover",
    "use_pg_rewind",
    "on_rewind_failure",
    "synchronous_mode",
    "primary_start_timeout",
    "watchdog",
    "ports",
    "api",
    "router_rw",
    "router_ro",
    "router_stats",
    "etcd_client",
    "etcd_peer",
    "network",
    "prefix_length",
    "gateway",
    "dns",
    "namespace",
    "heartbeat_interval",
    "election_timeout",
    "allow_unsafe_member_count",
    "parameters",
    "superuser",
    "replication_user",
    "app_user",
    "database",
    "main",
    "db1",
    "db2",
    "db3",
    "coord",
    "10.0.0.11",
    "10.0.0.12",
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "fd00::11",
    "::1",
    "::",
    "fe80::1%eth0",
    "52:54:00:00:00:11",
    "52-54-00-00-00-11",
    "ff:ff:ff:ff:ff:ff",
    "on",
    "off",
    "strict",
    "automatic",
    "required",
    "basebackup",
    "stop",
    "true",
    "false",
    "yes",
    "no",
    "~",
    "null",
    "10s",
    "500ms",
    "1m 30s",
    "0s",
    "1ns",
    "999999999999h",
    "-1s",
    "0",
    "1",
    "65535",
    "65536",
    "-1",
    "5432",
    "8008",
    "2379",
    "2380",
    "7000",
    "24",
    "33",
    "129",
    "/service",
    "",
    " ",
    "-",
    "_",
    "a_b",
    "kq8Vx2mPz4LwT7nB",
    "short",
    "password",
    "\u{0}",
    "é",
    "\u{feff}",
    "1e400",
    ".nan",
];

#[derive(Debug, Arbitrary)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Word(u8),
    PlainWord(u8),
}

#[derive(Debug, Arbitrary)]
pub enum Key {
    Word(u8),
    Text(String),
}

/// One change to the tree. `at` picks a node in document order (modulo the
/// number of nodes), so every byte string is a valid edit.
#[derive(Debug, Arbitrary)]
pub enum Edit {
    /// Replace a node by a scalar.
    Set { at: u16, value: Scalar },
    /// Remove a node from its mapping or sequence.
    Remove { at: u16 },
    /// Add a key to a mapping, or an item to a sequence.
    Insert { at: u16, key: Key, value: Scalar },
    /// Repeat a mapping's entry (a duplicate key) or a sequence's item.
    Duplicate { at: u16 },
    /// Put an empty container where a node was.
    Empty { at: u16, sequence: bool },
    /// Wrap a node in a one-item sequence.
    Wrap { at: u16 },
}

fn word(i: u8) -> &'static str {
    WORDS[i as usize % WORDS.len()]
}

impl Scalar {
    fn node(&self) -> Node {
        match self {
            Scalar::Null => Node::Null,
            Scalar::Bool(b) => Node::Bool(*b),
            Scalar::Int(i) => Node::Int(*i),
            Scalar::Float(f) => Node::Float(*f),
            Scalar::Text(t) => Node::Str {
                text: t.clone(),
                plain: false,
            },
            Scalar::Word(w) => Node::Str {
                text: word(*w).to_string(),
                plain: false,
            },
            Scalar::PlainWord(w) => Node::Str {
                text: word(*w).to_string(),
                plain: true,
            },
        }
    }
}

impl Key {
    fn text(&self) -> String {
        match self {
            Key::Word(w) => word(*w).to_string(),
            Key::Text(t) => t.clone(),
        }
    }
}

impl Node {
    /// A YAML document read into JSON values (the seeds hold only strings,
    /// numbers, booleans, sequences and mappings with string keys).
    pub fn from_json(v: &Value) -> Node {
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Node::Int(i),
                None => Node::Float(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => Node::Str {
                text: s.clone(),
                // Written as the seed had it: plain unless it needs quotes.
                plain: plain_ok(s),
            },
            Value::Array(items) => Node::Seq(items.iter().map(Node::from_json).collect()),
            Value::Object(map) => Node::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Node::from_json(v)))
                    .collect(),
            ),
        }
    }

    fn count(&self) -> usize {
        1 + match self {
            Node::Seq(items) => items.iter().map(Node::count).sum(),
            Node::Map(entries) => entries.iter().map(|(_, v)| v.count()).sum(),
            _ => 0,
        }
    }

    /// The child indexes leading to the node `n` steps into a pre-order walk.
    fn path_to(&self, n: usize) -> Vec<usize> {
        fn walk(node: &Node, n: &mut usize, path: &mut Vec<usize>) -> bool {
            if *n == 0 {
                return true;
            }
            *n -= 1;
            let children: Vec<&Node> = match node {
                Node::Seq(items) => items.iter().collect(),
                Node::Map(entries) => entries.iter().map(|(_, v)| v).collect(),
                _ => return false,
            };
            for (i, child) in children.into_iter().enumerate() {
                path.push(i);
                if walk(child, n, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        let (mut left, mut path) = (n, Vec::new());
        walk(self, &mut left, &mut path);
        path
    }

    fn child_mut(&mut self, i: usize) -> &mut Node {
        match self {
            Node::Seq(items) => &mut items[i],
            Node::Map(entries) => &mut entries[i].1,
            _ => unreachable!("paths lead through containers only"),
        }
    }

    fn at_path(&mut self, path: &[usize]) -> &mut Node {
        path.iter().fold(self, |node, i| node.child_mut(*i))
    }

    /// The node `n` steps into a pre-order walk.
    fn nth(&mut self, n: usize) -> &mut Node {
        let path = self.path_to(n);
        self.at_path(&path)
    }

    /// The container holding the node `n` steps into a pre-order walk, and
    /// the node's index in it; None for the root.
    fn parent_of(&mut self, n: usize) -> Option<(&mut Node, usize)> {
        let mut path = self.path_to(n);
        let i = path.pop()?;
        Some((self.at_path(&path), i))
    }

    pub fn apply(&mut self, edit: &Edit) {
        let total = self.count();
        let pick = |at: &u16| *at as usize % total;
        match edit {
            Edit::Set { at, value } => *self.nth(pick(at)) = value.node(),
            Edit::Empty { at, sequence } => {
                *self.nth(pick(at)) = if *sequence {
                    Node::Seq(Vec::new())
                } else {
                    Node::Map(Vec::new())
                }
            }
            Edit::Wrap { at } => {
                let node = self.nth(pick(at));
                let inner = std::mem::replace(node, Node::Null);
                *node = Node::Seq(vec![inner]);
            }
            Edit::Remove { at } => {
                if let Some((parent, i)) = self.parent_of(pick(at)) {
                    match parent {
                        Node::Seq(items) => {
                            items.remove(i);
                        }
                        Node::Map(entries) => {
                            entries.remove(i);
                        }
                        _ => {}
                    }
                }
            }
            Edit::Duplicate { at } => {
                if let Some((parent, i)) = self.parent_of(pick(at)) {
                    match parent {
                        Node::Seq(items) => items.insert(i, items[i].clone()),
                        Node::Map(entries) => entries.insert(i, entries[i].clone()),
                        _ => {}
                    }
                }
            }
            Edit::Insert { at, key, value } => match self.nth(pick(at)) {
                Node::Map(entries) => entries.push((key.text(), value.node())),
                Node::Seq(items) => items.push(value.node()),
                _ => {}
            },
        }
    }

    /// Block-style YAML, as a person would write the file.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        match self {
            Node::Map(entries) if !entries.is_empty() => emit_map(entries, 0, &mut out),
            Node::Seq(items) if !items.is_empty() => emit_seq(items, 0, &mut out),
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
        out
    }

    /// Every string under the top-level `secrets:` mapping.
    pub fn secrets(&self) -> Vec<String> {
        let Node::Map(entries) = self else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (k, v) in entries {
            if k == "secrets" {
                strings(v, &mut found);
            }
        }
        found
    }

    /// Every string and key outside the top-level `secrets:` mapping.
    pub fn non_secret_text(&self) -> Vec<String> {
        let mut found = Vec::new();
        match self {
            Node::Map(entries) => {
                for (k, v) in entries {
                    found.push(k.clone());
                    if k != "secrets" {
                        strings(v, &mut found);
                    } else if let Node::Map(inner) = v {
                        found.extend(inner.iter().map(|(k, _)| k.clone()));
                    }
                }
            }
            other => strings(other, &mut found),
        }
        found
    }
}

fn strings(node: &Node, out: &mut Vec<String>) {
    match node {
        Node::Str { text, .. } => out.push(text.clone()),
        Node::Seq(items) => items.iter().for_each(|i| strings(i, out)),
        Node::Map(entries) => entries.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        Node::Int(i) => out.push(i.to_string()),
        _ => {}
    }
}

/// Text that reads back as the same string when written unquoted.
fn plain_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        )
}

fn key(k: &str) -> String {
    if plain_ok(k) {
        k.to_string()
    } else {
        quoted(k)
    }
}

/// A JSON string literal is a valid YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn inline(node: &Node) -> String {
    match node {
        Node::Null => "null".into(),
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) if f.is_nan() => ".nan".into(),
        Node::Float(f) if f.is_infinite() => (if *f > 0.0 { ".inf" } else { "-.inf" }).into(),
        Node::Float(f) => format!("{f:?}"),
        Node::Str { text, plain } => {
            // Plain text that would break the line structure is quoted.
            if *plain && !text.is_empty() && !text.contains(['\n', '\r', ':', '#']) {
                text.clone()
            } else {
                quoted(text)
            }
        }
        Node::Seq(items) if items.is_empty() => "[]".into(),
        Node::Map(entries) if entries.is_empty() => "{}".into(),
        Node::Seq(_) | Node::Map(_) => unreachable!("containers are written as blocks"),
    }
}

fn is_block(node: &Node) -> bool {
    matches!(node, Node::Seq(v) if !v.is_empty()) || matches!(node, Node::Map(v) if !v.is_empty())
}

fn emit_map(entries: &[(String, Node)], indent: usize, out: &mut String) {
    for (k, v) in entries {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key(k));
        out.push(':');
        if is_block(v) {
            out.push('\n');
            emit_block(v, indent + 2, out);
        } else {
            out.push(' ');
            out.push_str(&inline(v));
            out.push('\n');
        }
    }
}

fn emit_seq(items: &[Node], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        if is_block(item) {
            out.push('\n');
            emit_block(item, indent + 2, out);
        } else {
            out.push(' ');
            out.push_str(&inline(item));
            out.push('\n');
        }
    }
}

fn emit_block(node: &Node, indent: usize, out: &mut String) {
    match node {
        Node::Map(entries) => emit_map(entries, indent, out),
        Node::Seq(items) => emit_seq(items, indent, out),
        _ => unreachable!("only containers are blocks"),
    }
}
