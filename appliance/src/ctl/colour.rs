//! Colours for pgboxctl's tables: only when a person reads them on a
//! terminal, and never when NO_COLOR is set (https://no-color.org), so that
//! scripts and files get plain text.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Healthy: a running leader, a streaming replica, an armed watchdog.
    Good,
    /// Worth a look: starting, not streaming, no watchdog.
    Warn,
    /// Wrong: stopped, crashed, DCS unreachable.
    Bad,
    Bold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    on: bool,
}

impl Palette {
    /// For text written to standard output.
    pub fn for_stdout() -> Palette {
        Palette::decide(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        )
    }

    /// Colour on a terminal, unless NO_COLOR is set to anything non-empty.
    pub fn decide(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> Palette {
        Palette {
            on: terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    pub fn plain() -> Palette {
        Palette { on: false }
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if !self.on || text.is_empty() {
            return text.to_string();
        }
        let code = match style {
            Style::Good => "32",
            Style::Warn => "33",
            Style::Bad => "31",
            Style::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// How a member's state reads at a glance.
pub fn state_style(state: &str) -> Style {
    match state {
        "running" | "streaming" => Style::Good,
        "stopped" | "crashed" | "start failed" | "uninitialized" => Style::Bad,
        _ => Style::Warn,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(Palette::decide(true, None).on);
        assert!(!Palette::decide(false, None).on);
        assert!(!Palette::decide(true, Some(OsStr::new("1"))).on);
        // The convention: an empty NO_COLOR does not count as set.
        assert!(Palette::decide(true, Some(OsStr::new(""))).on);
    }

    #[test]
    fn painting() {
        let on = Palette::decide(true, None);
        assert_eq!(on.paint(Style::Good, "running"), "\x1b[32mrunning\x1b[0m");
        assert_eq!(on.paint(Style::Bad, ""), "");
        assert_eq!(Palette::plain().paint(Style::Bad, "stopped"), "stopped");
    }
}
