//! Config errors that point at the place to fix: file, line, column, account, and a hint.
//! Rendered like a compiler diagnostic, with the offending line underlined.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    /// The text of the line, for the underline.
    pub source_line: String,
    /// Width of the underline, at least 1.
    pub width: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// Boxed to keep `Result<_, ConfigError>` small on the happy path.
    pub location: Option<Box<Location>>,
    pub account: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl ConfigError {
    /// An error not tied to a place in the file (the file is missing, unreadable, ...).
    pub fn file(path: &Path, message: impl Into<String>, help: Option<&str>) -> ConfigError {
        ConfigError {
            path: path.to_owned(),
            location: None,
            account: None,
            message: message.into(),
            help: help.map(str::to_owned),
        }
    }

    /// The line:column of each error, for tests and one-line logs.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.location.as_ref().map(|l| (l.line, l.column))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn locate(source: &str, span: Range<usize>) -> Location {
    let start = span.start.min(source.len());
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    let line = source[..start].matches('\n').count() + 1;
    let column = source[line_start..start].chars().count() + 1;
    let end = span.end.clamp(start, line_end);
    Location {
        line,
        column,
        source_line: source[line_start..line_end]
            .trim_end_matches('\r')
            .to_owned(),
        width: source[start..end].chars().count().max(1),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(loc) = &self.location {
            write!(f, ":{}:{}", loc.line, loc.column)?;
        }
        f.write_str(": ")?;
        if let Some(account) = &self.account {
            write!(f, "account `{account}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(loc) = &self.location {
            let gutter = loc.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {}{}",
                "",
                loc.line,
                loc.source_line,
                "",
                " ".repeat(loc.column - 1),
                "^".repeat(loc.width),
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_characters_from_one() {
        let src = "a = 1\nhöst = \"x\"\n";
        let at = src.find("\"x\"").unwrap();
        let loc = locate(src, at..at + 3);
        assert_eq!((loc.line, loc.column, loc.width), (2, 8, 3));
        assert_eq!(loc.source_line, "höst = \"x\"");
    }

    #[test]
    fn display_underlines_the_span_and_names_the_account() {
        let src = "[[account]]\nname = \"w\"\ntls = \"nope\"\n";
        let at = src.find("\"nope\"").unwrap();
        let err = ConfigError {
            path: "c.toml".into(),
            location: Some(Box::new(locate(src, at..at + 6))),
            account: Some("w".into()),
            message: "bad tls".into(),
            help: Some("use implicit".into()),
        };
        assert_eq!(
            err.to_string(),
            "c.toml:3:7: account `w`: bad tls\n  |\n3 | tls = \"nope\"\n  |       ^^^^^^\n  help: use implicit"
        );
    }
}
