//! The error of every `FromStr` in the library: a name or value the command
//! line (or a caller) gave that is not one of those accepted.

/// A name or value that could not be parsed: what it was meant to be, what
/// was given, and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{given}`: {expected}")]
pub struct ParseError {
    /// What the text was meant to name (e.g. "unknown model").
    pub what: &'static str,
    /// The text as given.
    pub given: String,
    /// What would have been accepted, or why the value is out of range.
    pub expected: String,
}

impl ParseError {
    /// An error for `given`, meant as `what`, with what is `expected`.
    pub fn new(what: &'static str, given: &str, expected: impl Into<String>) -> Self {
        ParseError {
            what,
            given: given.to_string(),
            expected: expected.into(),
        }
    }
}
