//! chem stage: SMILES in, a perceived [`Molecule`] out.
//!
//! Parsing, sanitization, aromaticity, rings, hydrogens, hybridization and
//! stereo come from cosmolkit (a Rust port of RDKit 2026.09), wrapped here so
//! the rest of graphsam sees only this module's small interface and the
//! toolkit can be swapped. Masses and Gasteiger charges, which cosmolkit does
//! not provide, are carried by this module.

mod atom;
mod error;
mod gasteiger;
mod mass;
mod molecule;
mod periodic_table;
mod rings;
mod smarts;

pub use atom::{AtomInfo, BondInfo, BondStereo, BondType, Hybridization};
pub use error::{SmilesError, SmilesErrorKind};
pub use gasteiger::ITERATIONS as GASTEIGER_ITERATIONS;
pub use mass::atom_mass;
pub use molecule::{MAX_SMILES_BYTES, Molecule, parse_smiles};
pub use smarts::{SmartsError, SmartsPattern};
