//! SMARTS substructure patterns, compiled once and matched against molecules.

use super::molecule::Molecule;

/// A compiled SMARTS pattern (RDKit SMARTS dialect, recursive `$()` included).
#[derive(Debug, Clone)]
pub struct SmartsPattern {
    text: String,
    compiled: cosmolkit::CompiledQuery,
}

/// A SMARTS string that does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid SMARTS {text:?}: {detail}")]
pub struct SmartsError {
    /// The rejected pattern.
    pub text: String,
    /// The toolkit's reason.
    pub detail: String,
}

impl SmartsPattern {
    /// Parse and compile `text`.
    pub fn new(text: &str) -> Result<Self, SmartsError> {
        let fail = |detail: String| SmartsError {
            text: text.to_owned(),
            detail,
        };
        let query = cosmolkit::parse_smarts(text).map_err(|e| fail(e.to_string()))?;
        let compiled = cosmolkit::compile_query(&query).map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            text: text.to_owned(),
            compiled,
        })
    }

    /// The pattern's source text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl Molecule {
    /// Per atom: does it take part in any match of `pattern`
    /// (`sum(mol.GetSubstructMatches(pattern), ())` membership, RDKit's default
    /// uniquified matches)? A matcher failure marks no atom.
    pub fn atoms_matching(&self, pattern: &SmartsPattern) -> Vec<bool> {
        let mut hit = vec![false; self.num_atoms()];
        if let Ok(matches) = self.toolkit().substruct_matches_compiled(&pattern.compiled) {
            for found in matches {
                for atom in found.atom_mapping {
                    if let Some(flag) = hit.get_mut(atom) {
                        *flag = true;
                    }
                }
            }
        }
        hit
    }
}
