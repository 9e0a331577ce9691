//! The error a caller gets for a SMILES string that is not a molecule.

use std::fmt;

/// What kind of problem made a SMILES string unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmilesErrorKind {
    /// The string is empty or only whitespace.
    Empty,
    /// The text is not SMILES: bad token, unclosed branch or ring, unknown element, ...
    Syntax,
    /// The text parses but is not a sane molecule: impossible valence,
    /// aromatic ring that cannot be kekulized, bad stereo, ...
    Chemistry,
    /// The string is longer than [`crate::chem::MAX_SMILES_BYTES`]; the toolkit's
    /// recursive algorithms could exhaust the stack on such inputs.
    TooLong,
    /// The toolkit failed while perceiving a molecule it had accepted.
    Internal,
}

impl fmt::Display for SmilesErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty SMILES",
            Self::Syntax => "SMILES syntax error",
            Self::Chemistry => "chemically invalid molecule",
            Self::TooLong => "SMILES too long",
            Self::Internal => "chemistry toolkit failure",
        })
    }
}

/// An invalid SMILES string: what is wrong, and where in the string when known.
///
/// `Display` reads e.g. `SMILES syntax error at byte 3 of "CC(": unclosed branch`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SmilesError {
    smiles: String,
    kind: SmilesErrorKind,
    detail: String,
    position: Option<usize>,
}

/// Longest input echoed back in a message; longer strings are elided in the middle.
const MAX_ECHO: usize = 120;

impl SmilesError {
    pub(crate) fn new(
        smiles: &str,
        kind: SmilesErrorKind,
        detail: impl Into<String>,
        position: Option<usize>,
    ) -> Self {
        Self {
            smiles: smiles.to_owned(),
            kind,
            detail: detail.into(),
            position,
        }
    }

    /// The rejected input, unchanged.
    pub fn smiles(&self) -> &str {
        &self.smiles
    }

    /// The class of problem.
    pub fn kind(&self) -> SmilesErrorKind {
        self.kind
    }

    /// The toolkit's description of the problem.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Byte offset into [`Self::smiles`] where the problem was found, when known.
    pub fn position(&self) -> Option<usize> {
        self.position
    }

    fn echo(&self) -> String {
        let chars: Vec<char> = self.smiles.chars().collect();
        if chars.len() <= MAX_ECHO {
            return self.smiles.clone();
        }
        let head: String = chars[..MAX_ECHO / 2].iter().collect();
        let tail: String = chars[chars.len() - MAX_ECHO / 2..].iter().collect();
        format!("{head}...{tail}")
    }
}

impl fmt::Display for SmilesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(position) = self.position {
            write!(f, " at byte {position}")?;
        }
        write!(f, " of {:?}", self.echo())?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Translate cosmolkit's parse failure into ours, keeping the byte offset when it has one.
pub(crate) fn from_toolkit(smiles: &str, error: &cosmolkit::SmilesError) -> SmilesError {
    use cosmolkit::SmilesParseError as P;
    match error {
        cosmolkit::SmilesError::Parse(parse) => {
            let (detail, position) = match parse {
                P::Syntax { offset, message } => (message.clone(), Some(*offset)),
                P::Atom { offset, text } => (format!("invalid atom {text:?}"), Some(*offset)),
                P::Unsupported { token, offset } => {
                    (format!("unexpected character {token:?}"), Some(*offset))
                }
                other => (other.to_string(), None),
            };
            SmilesError::new(smiles, SmilesErrorKind::Syntax, detail, position)
        }
        cosmolkit::SmilesError::Hydrogen(_)
        | cosmolkit::SmilesError::Sanitize(_)
        | cosmolkit::SmilesError::Stereo(_) => {
            SmilesError::new(smiles, SmilesErrorKind::Chemistry, error.to_string(), None)
        }
        other => SmilesError::new(smiles, SmilesErrorKind::Internal, other.to_string(), None),
    }
}
