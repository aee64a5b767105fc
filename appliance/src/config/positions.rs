//! Where each field of the file is written, so that checks made on the typed
//! `Config` can still say "line 12, column 9".
//!
//! Built from the YAML parser's events of the same text, which keeps the
//! schema types free of position wrappers.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{self, Event, Parser};

/// Deeper than any pgbox.yaml can be; deeper input is skipped, not
/// recursed into, so a hostile file cannot exhaust the stack here.
const MAX_DEPTH: usize = 32;

/// 1-based (line, column).
pub type Pos = (usize, usize);

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Pos>,
    value: Pos,
}

#[derive(Debug, Default)]
pub struct Positions {
    entries: HashMap<String, Entry>,
    scalars: HashMap<String, String>,
}

/// `parent.key`, or `parent["odd key"]` for keys that would not read as one
/// path segment (PostgreSQL extension settings contain dots).
pub fn join_key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The path one level up, or None at the top.
fn parent_of(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    // A path ends either in `[...]` or in `.key`/`key`; brackets may contain
    // quoted dots, so look at the end first.
    if path.ends_with(']') {
        let mut depth_quote = false;
        for (i, c) in path.char_indices().rev().skip(1) {
            match c {
                '"' => depth_quote = !depth_quote,
                '[' if !depth_quote => return Some(&path[..i]),
                _ => {}
            }
        }
        return Some("");
    }
    match path.rfind(['.', ']']) {
        Some(i) if path.as_bytes()[i] == b'.' => Some(&path[..i]),
        Some(i) => Some(&path[..=i]),
        None => Some(""),
    }
}

impl Positions {
    /// Index `text`. A syntax error stops indexing quietly: positions are a
    /// help for messages, and the parse proper reports the syntax error.
    pub fn build(text: &str) -> Positions {
        let mut options = granit_parser::Options::default();
        options.set_emit_comments(false);
        let mut events = Events {
            parser: Parser::new_from_str_with_options(text, options),
        };
        let mut positions = Positions::default();
        // Skip to the first document's root node.
        while let Some((event, pos)) = events.next() {
            match event {
                Event::StreamStart | Event::DocumentStart(..) => continue,
                Event::StreamEnd | Event::DocumentEnd => break,
                other => {
                    positions.node(&mut events, String::new(), None, other, pos, 0);
                    break;
                }
            }
        }
        positions
    }

    fn node(
        &mut self,
        events: &mut Events<'_>,
        path: String,
        key: Option<Pos>,
        event: Event<'_>,
        pos: Pos,
        depth: usize,
    ) {
        self.entries.insert(path.clone(), Entry { key, value: pos });
        if depth >= MAX_DEPTH {
            self.skip(events, event);
            return;
        }
        match event {
            Event::Scalar(text, ..) => {
                self.scalars.insert(path, text.into_owned());
            }
            Event::MappingStart(..) => loop {
                let Some((k, kpos)) = events.next() else {
                    return;
                };
                match k {
                    Event::MappingEnd => return,
                    Event::Scalar(name, ..) => {
                        let child = join_key(&path, &name);
                        let Some((v, vpos)) = events.next() else {
                            return;
                        };
                        self.node(events, child, Some(kpos), v, vpos, depth + 1);
                    }
                    // A collection used as a key has no path of its own;
                    // consume it and its value without recording them.
                    other => {
                        self.skip(events, other);
                        let Some((v, _)) = events.next() else { return };
                        self.skip(events, v);
                    }
                }
            },
            Event::SequenceStart(..) => {
                let mut index = 0;
                loop {
                    let Some((item, ipos)) = events.next() else {
                        return;
                    };
                    if matches!(item, Event::SequenceEnd) {
                        return;
                    }
                    self.node(
                        events,
                        join_index(&path, index),
                        None,
                        item,
                        ipos,
                        depth + 1,
                    );
                    index += 1;
                }
            }
            _ => {}
        }
    }

    fn skip(&mut self, events: &mut Events<'_>, event: Event<'_>) {
        let mut depth = match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => 1,
            _ => return,
        };
        while depth > 0 {
            match events.next() {
                Some((Event::MappingStart(..) | Event::SequenceStart(..), _)) => depth += 1,
                Some((Event::MappingEnd | Event::SequenceEnd, _)) => depth -= 1,
                Some(_) => {}
                None => return,
            }
        }
    }

    /// Where the value at `path` is written; for a value that is not in the
    /// file (a default), the nearest enclosing value that is.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.lookup(path).map(|e| e.value)
    }

    /// Where the key naming `path` is written (falls back like `value`).
    /// Points at `wal_level:` rather than at its value, for "this key is not
    /// allowed" kinds of problems.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.lookup(path).map(|e| e.key.unwrap_or(e.value))
    }

    /// The text of the scalar written at exactly `path`.
    pub fn scalar(&self, path: &str) -> Option<&str> {
        self.scalars.get(path).map(String::as_str)
    }

    /// Whether `path` itself is written in the file.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    fn lookup(&self, path: &str) -> Option<Entry> {
        let mut p = path;
        loop {
            if let Some(e) = self.entries.get(p) {
                return Some(*e);
            }
            p = parent_of(p)?;
        }
    }
}

/// Parser events with their start positions, node events only.
struct Events<'a> {
    parser: Parser<'a, granit_parser::StrInput<'a>>,
}

impl<'a> Events<'a> {
    fn next(&mut self) -> Option<(Event<'a>, Pos)> {
        loop {
            let (event, span) = self.parser.next_event()?.ok()?;
            // Metadata events (anchors, comments) are not nodes.
            if matches!(event, Event::Anchor(..)) {
                continue;
            }
            #[allow(unreachable_patterns)]
            match event {
                Event::StreamStart
                | Event::StreamEnd
                | Event::DocumentStart(..)
                | Event::DocumentEnd
                | Event::Alias(..)
                | Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::SequenceEnd
                | Event::MappingStart(..)
                | Event::MappingEnd => {
                    return Some((event, (span.start.line(), span.start.col() + 1)));
                }
                _ => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_positions() {
        let text = "a:\n  b: 1\n  list:\n    - x: 2\n    - 3\n  \"odd.key\": on\n";
        let p = Positions::build(text);
        assert_eq!(p.value("a.b"), Some((2, 6)));
        assert_eq!(p.key("a.b"), Some((2, 3)));
        assert_eq!(p.value("a.list[0].x"), Some((4, 10)));
        assert_eq!(p.value("a.list[1]"), Some((5, 7)));
        assert_eq!(p.key("a[\"odd.key\"]"), Some((6, 3)));
        // Not written: the nearest written ancestor.
        assert_eq!(p.value("a.list[0].y"), Some((4, 7)));
        assert_eq!(p.value("a[\"other.key\"]"), p.value("a"));
    }

    #[test]
    fn deep_nesting_is_not_recursed_into() {
        let text = format!("a: {}1{}\nb: 2\n", "[".repeat(200), "]".repeat(200));
        let p = Positions::build(&text);
        assert_eq!(p.value("b"), Some((2, 4)));
    }

    #[test]
    fn parents() {
        assert_eq!(parent_of("a.b"), Some("a"));
        assert_eq!(parent_of("a[3]"), Some("a"));
        assert_eq!(parent_of("a[3].b"), Some("a[3]"));
        assert_eq!(parent_of("a[\"x.y[1]\"]"), Some("a"));
        assert_eq!(parent_of("a"), Some(""));
        assert_eq!(parent_of(""), None);
    }
}
