//! Diagnostics: a problem found in a file, with the `line:column` of the node
//! that caused it. Every error the spec crate reports is one of these, so the
//! CLI can print `path:line:col: message` uniformly.

use std::fmt;

/// A 1-based position in a YAML file. `0:0` means "unknown" and is only used
/// for problems that belong to no node (for example the whole file is too big).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    pub fn new(line: u32, column: u32) -> Self {
        Pos { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            pos,
            message: message.into(),
        }
    }

    /// Renders as `path:line:col: message`, the one-line form the CLI prints.
    pub fn render(&self, path: &str) -> String {
        format!("{path}:{}: {}", self.pos, self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// All problems found in one file, in file order. Never empty when returned as
/// an error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn one(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostics(vec![Diagnostic::new(pos, message)])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn first(&self) -> Option<&Diagnostic> {
        self.0.first()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects problems during validation so that *all* of them are reported.
#[derive(Debug, Default)]
pub struct Collector(Vec<Diagnostic>);

impl Collector {
    pub fn push(&mut self, pos: Pos, message: impl Into<String>) {
        self.0.push(Diagnostic::new(pos, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was collected, else every problem sorted by position.
    pub fn finish(mut self) -> Result<(), Diagnostics> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0.sort_by_key(|d| d.pos);
        Err(Diagnostics(self.0))
    }
}
