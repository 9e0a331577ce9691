//! Chemistry and featurization stages of graphsam: a SMILES string becomes a
//! [`chem::Molecule`] with RDKit's perception, and a molecule becomes the plain
//! feature arrays each backbone consumes ([`features`]).
#![warn(missing_docs)]

pub mod chem;
pub mod features;
