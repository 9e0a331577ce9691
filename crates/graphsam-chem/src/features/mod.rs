//! features stage: a perceived molecule becomes the plain arrays one backbone
//! consumes. Three feature sets, each a list of one-hot / scalar blocks with a
//! known width (DESIGN.md §5):
//!
//! * [`FeatureSet::Compt`]: CoMPT, 115 atom + 13 bond features and the
//!   topological distance matrix;
//! * [`FeatureSet::Chemprop`]: chemprop v1, 133 atom + 14 bond features;
//! * [`FeatureSet::Grover`]: GROVER, chemprop's 133 + 18 extras = 151 atom
//!   features, chemprop's 14 bond features.
//!
//! Each follows its reference implementation's RDKit calls and quirks exactly;
//! the quirks are documented where they are reproduced.

mod chemprop;
mod compt;
mod encoding;
mod grover;

use std::fmt;
use std::str::FromStr;

use crate::chem::{Molecule, SmilesError, parse_smiles};

pub use compt::MAX_ATOMS as COMPT_MAX_ATOMS;

/// Distance given to atom pairs in different fragments (CoMPT.md): large and
/// finite, so the distance kernel sends their weight to ~0 without NaNs.
pub const DISCONNECTED_DISTANCE: f32 = 1.0e4;

/// Which backbone's featurization to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum FeatureSet {
    /// CoMPT (Chen et al. 2021): 115 atom, 13 bond features, distances.
    Compt,
    /// chemprop v1 (Yang et al. 2019): 133 atom, 14 bond features.
    Chemprop,
    /// GROVER (Rong et al. 2020): 151 atom, 14 bond features.
    Grover,
}

impl FeatureSet {
    /// Every feature set, in a stable order.
    pub const ALL: [FeatureSet; 3] = [FeatureSet::Compt, FeatureSet::Chemprop, FeatureSet::Grover];

    /// Width of one atom's feature vector.
    pub const fn atom_dim(self) -> usize {
        match self {
            Self::Compt => compt::ATOM_DIM,
            Self::Chemprop => chemprop::ATOM_DIM,
            Self::Grover => grover::ATOM_DIM,
        }
    }

    /// Width of one bond's feature vector.
    pub const fn bond_dim(self) -> usize {
        match self {
            Self::Compt => compt::BOND_DIM,
            Self::Chemprop | Self::Grover => chemprop::BOND_DIM,
        }
    }

    /// Molecules with at least this many heavy atoms are left out by
    /// default: CoMPT's reference drops them (its position table has 100
    /// rows); the other backbones take every size.
    pub const fn default_atom_limit(self) -> Option<usize> {
        match self {
            Self::Compt => Some(100),
            Self::Chemprop | Self::Grover => None,
        }
    }

    /// Lower-case name, as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Compt => "compt",
            Self::Chemprop => "chemprop",
            Self::Grover => "grover",
        }
    }
}

impl fmt::Display for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A feature-set name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature set {given:?}; choose one of: compt, chemprop, grover")]
pub struct UnknownFeatureSet {
    /// What was asked for.
    pub given: String,
}

impl FromStr for FeatureSet {
    type Err = UnknownFeatureSet;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|set| set.name() == wanted)
            .ok_or_else(|| UnknownFeatureSet {
                given: text.to_owned(),
            })
    }
}

/// One molecule as plain arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct MolGraph {
    /// Number of atoms.
    pub n_atoms: usize,
    /// `n_atoms × atom_dim`, row-major.
    pub atom_features: Vec<f32>,
    /// Each undirected bond once, as (begin, end) atom indices, in bond order.
    pub bonds: Vec<[u32; 2]>,
    /// `bonds.len() × bond_dim`, row-major (chemprop and GROVER: the 14-dim chemprop vector).
    pub bond_features: Vec<f32>,
    /// CoMPT only: `n_atoms × n_atoms` topological distances, row-major;
    /// pairs in different fragments hold [`DISCONNECTED_DISTANCE`].
    pub distances: Option<Vec<f32>>,
}

impl MolGraph {
    /// Feature row of atom `i` (empty when out of range).
    pub fn atom_row(&self, i: usize) -> &[f32] {
        row(&self.atom_features, self.n_atoms, i)
    }

    /// Feature row of bond `i` (empty when out of range).
    pub fn bond_row(&self, i: usize) -> &[f32] {
        row(&self.bond_features, self.bonds.len(), i)
    }
}

fn row(values: &[f32], rows: usize, i: usize) -> &[f32] {
    if rows == 0 || i >= rows {
        return &[];
    }
    let width = values.len() / rows;
    &values[i * width..(i + 1) * width]
}

/// Featurize a parsed molecule.
pub fn featurize(mol: &Molecule, set: FeatureSet) -> MolGraph {
    let bonds: Vec<[u32; 2]> = mol.bonds().iter().map(|b| [b.begin, b.end]).collect();
    let (atom_features, bond_features, distances) = match set {
        FeatureSet::Compt => (
            compt::atom_features(mol),
            compt::bond_features(mol),
            Some(compt::distances(mol)),
        ),
        FeatureSet::Chemprop => (
            chemprop::atom_features(mol),
            chemprop::bond_features(mol),
            None,
        ),
        FeatureSet::Grover => (
            grover::atom_features(mol),
            chemprop::bond_features(mol),
            None,
        ),
    };
    MolGraph {
        n_atoms: mol.num_atoms(),
        atom_features,
        bonds,
        bond_features,
        distances,
    }
}

/// Parse and featurize in one step.
pub fn featurize_smiles(smiles: &str, set: FeatureSet) -> Result<MolGraph, SmilesError> {
    Ok(featurize(&parse_smiles(smiles)?, set))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_choices() {
        for set in FeatureSet::ALL {
            assert_eq!(set.name().parse::<FeatureSet>().unwrap(), set);
        }
        assert_eq!("GROVER".parse::<FeatureSet>().unwrap(), FeatureSet::Grover);
        let error = "mpnn".parse::<FeatureSet>().unwrap_err().to_string();
        assert!(error.contains("compt, chemprop, grover"), "{error}");
    }

    #[test]
    fn widths_match_the_design() {
        let dims: Vec<_> = FeatureSet::ALL
            .iter()
            .map(|s| (s.atom_dim(), s.bond_dim()))
            .collect();
        assert_eq!(dims, vec![(115, 13), (133, 14), (151, 14)]);
        for set in FeatureSet::ALL {
            let graph = featurize_smiles("CC(=O)Oc1ccccc1C(=O)O.[Na+]", set).unwrap();
            assert_eq!(graph.atom_features.len(), graph.n_atoms * set.atom_dim());
            assert_eq!(
                graph.bond_features.len(),
                graph.bonds.len() * set.bond_dim()
            );
            assert_eq!(graph.distances.is_some(), set == FeatureSet::Compt);
        }
    }

    #[test]
    fn compt_distances_use_the_disconnected_value() {
        let graph = featurize_smiles("CO.[Na+]", FeatureSet::Compt).unwrap();
        let d = graph.distances.unwrap();
        assert_eq!(d, vec![0.0, 1.0, 1.0e4, 1.0, 0.0, 1.0e4, 1.0e4, 1.0e4, 0.0]);
    }

    #[test]
    fn bad_smiles_is_an_error_not_a_panic() {
        assert!(featurize_smiles("C1CC", FeatureSet::Grover).is_err());
    }
}
