//! Errors in a first-boot file, each one pointing at the place to fix.

use std::fmt;

/// One problem in the file.
///
/// `source` is the file name as the person knows it (`pgbox.yaml`, or the
/// path given to `pgboxctl config check`); it is empty for problems that do
/// not come from a file (such as a bad `--node` argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    /// Field path such as `nodes[1].name`; empty when the problem is the
    /// file as a whole (unreadable, not YAML).
    pub path: String,
    /// 1-based line, when the position is known.
    pub line: Option<usize>,
    /// 1-based column, when the position is known.
    pub column: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub fn new(source: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            source: source.to_string(),
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn at(mut self, pos: Option<(usize, usize)>) -> Self {
        if let Some((line, column)) = pos {
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE:COL: PATH: MESSAGE`, the shape editors and terminals turn
    /// into a jump to the spot; parts that are unknown are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, "")
    }
}

impl ConfigError {
    /// The display form with `severity` (`warning: `) after the position.
    fn write(&self, f: &mut fmt::Formatter<'_>, severity: &str) -> fmt::Result {
        let mut prefix = self.source.clone();
        if let Some(line) = self.line {
            if !prefix.is_empty() {
                prefix.push(':');
            }
            prefix.push_str(&line.to_string());
            if let Some(col) = self.column {
                prefix.push(':');
                prefix.push_str(&col.to_string());
            }
        }
        if !prefix.is_empty() {
            write!(f, "{prefix}: ")?;
        }
        f.write_str(severity)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A valid setting that puts data at risk: the file is accepted and runs as
/// written, but a person should know. Shown as
/// `FILE:LINE:COL: warning: PATH: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning(pub ConfigError);

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, "warning: ")
    }
}

/// Every problem found in a file, in file order where positions are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }

    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors::single(e)
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
