//! Config errors: every problem names its field and says what is allowed.

use std::fmt;
use std::path::PathBuf;

use hubsync_processors::RuleError;
use serde::Serialize;

/// One problem (or warning) in a config: the field's dotted path, what is wrong and what is
/// allowed, and where in the file when the TOML parser found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted path of the field, e.g. `users.mapping[1].owner`; empty for a syntax error that
    /// belongs to no field.
    pub field: String,
    pub message: String,
    /// 1-based line of the file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = self.line.map(|line| match self.column {
            Some(column) => format!("line {line}, column {column}"),
            None => format!("line {line}"),
        });
        match (self.field.is_empty(), location) {
            (false, Some(location)) => write!(f, "{}: {} ({location})", self.field, self.message),
            (false, None) => write!(f, "{}: {}", self.field, self.message),
            (true, Some(location)) => write!(f, "{location}: {}", self.message),
            (true, None) => f.write_str(&self.message),
        }
    }
}

impl From<RuleError> for Problem {
    fn from(error: RuleError) -> Self {
        Self::new(error.path, error.message)
    }
}

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse, or parses but breaks the rules; every problem found is listed.
    #[error("{}", List("invalid configuration", problems))]
    Invalid { problems: Vec<Problem> },
    /// The config is valid but some of its secrets cannot be read here.
    #[error("{}", List("cannot resolve secrets", problems))]
    Secrets { problems: Vec<Problem> },
}

impl ConfigError {
    /// The problems, one per field; a read error is one problem without a field.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Self::Read { .. } => vec![Problem::new("", self.to_string())],
            Self::Invalid { problems } | Self::Secrets { problems } => problems.clone(),
        }
    }

    /// Turns a TOML error into a problem that keeps the key path and the line and column, but not
    /// the offending line itself (it may hold a secret someone pasted inline).
    pub(crate) fn from_toml(path: &str, error: &toml::de::Error, text: &str) -> Self {
        let message = error.message().trim_end().replace('\n', "; ");
        // A missing key is reported on its table; name the key itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key);
        let field = match (path, missing) {
            ("" | ".", Some(key)) => key.to_owned(),
            ("" | ".", None) => String::new(),
            (path, Some(key)) => format!("{path}.{key}"),
            (path, None) => path.to_owned(),
        };
        let mut problem = Problem::new(field, message);
        if let Some(span) = error.span() {
            let (line, column) = line_column(text, span.start);
            problem.line = Some(line);
            problem.column = Some(column);
        }
        Self::Invalid {
            problems: vec![problem],
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

struct List<'a>(&'static str, &'a [Problem]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(title, problems) = self;
        match problems {
            [one] => write!(f, "{title}: {one}"),
            many => {
                write!(f, "{title}, {} problems:", many.len())?;
                for problem in many.iter() {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_print_field_first() {
        let mut problem = Problem::new("stages.sink.batch_size", "must be 1..=100");
        assert_eq!(
            problem.to_string(),
            "stages.sink.batch_size: must be 1..=100"
        );
        problem.line = Some(3);
        problem.column = Some(14);
        assert_eq!(
            problem.to_string(),
            "stages.sink.batch_size: must be 1..=100 (line 3, column 14)"
        );
        problem.field.clear();
        assert_eq!(problem.to_string(), "line 3, column 14: must be 1..=100");
    }

    #[test]
    fn an_error_lists_every_problem() {
        let error = ConfigError::Invalid {
            problems: vec![Problem::new("a", "x"), Problem::new("b", "y")],
        };
        assert_eq!(
            error.to_string(),
            "invalid configuration, 2 problems:\n  a: x\n  b: y"
        );
        let one = ConfigError::Invalid {
            problems: vec![Problem::new("a", "x")],
        };
        assert_eq!(one.to_string(), "invalid configuration: a: x");
    }

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
