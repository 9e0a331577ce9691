//! CoMPT features (`dataset_graph.py` of the CoMPT reference code):
//! atom 115 = atomic number 1..100 + unk (101) · hybridization SP..SP3D2 + unk (6)
//! · total H (hydrogen neighbours included)/8, degree/4, formal charge/8,
//! total valence/8, Gasteiger charge, Gasteiger implicit-H charge (NaN/inf → 0),
//! aromatic, in ring (8);
//! bond 13 = type [single, double, triple, aromatic] (4) · stereo [ANY, CIS, E,
//! NONE, TRANS, Z] (6) · conjugated, aromatic, in ring (3).
//!
//! Reproduced quirk: the bond blocks have no "unknown" slot, so the reference
//! marks any other bond type (dative, quadruple, ...) as aromatic and any
//! other stereo (atropisomers) as Z.

use super::DISCONNECTED_DISTANCE;
use super::chemprop::HYBRIDIZATIONS;
use super::encoding::{flag, one_hot};
use crate::chem::{BondStereo, BondType, Molecule};

/// Width of a CoMPT atom row.
pub(super) const ATOM_DIM: usize = 115;
/// Width of a CoMPT bond row.
pub(super) const BOND_DIM: usize = 13;
/// The reference drops molecules with this many atoms or more (the data stage applies it).
pub const MAX_ATOMS: usize = 100;

const BOND_TYPES: [BondType; 4] = [
    BondType::Single,
    BondType::Double,
    BondType::Triple,
    BondType::Aromatic,
];
const STEREOS: [BondStereo; 6] = [
    BondStereo::Any,
    BondStereo::Cis,
    BondStereo::E,
    BondStereo::None,
    BondStereo::Trans,
    BondStereo::Z,
];

fn finite_or_zero(value: f64) -> f32 {
    if value.is_finite() { value as f32 } else { 0.0 }
}

pub(super) fn atom_features(mol: &Molecule) -> Vec<f32> {
    let charges = mol.gasteiger_charges();
    let atomic: Vec<u8> = (1..=100).collect();
    let mut out = vec![0.0f32; mol.num_atoms() * ATOM_DIM];
    for ((row, atom), (charge, h_charge)) in
        out.chunks_exact_mut(ATOM_DIM).zip(mol.atoms()).zip(charges)
    {
        one_hot(&mut row[0..101], atom.atomic_number, &atomic);
        one_hot(&mut row[101..107], atom.hybridization, &HYBRIDIZATIONS);
        let hydrogens = f32::from(atom.total_hs) + f32::from(atom.hydrogen_neighbors);
        row[107] = hydrogens / 8.0;
        row[108] = f32::from(atom.degree) / 4.0;
        row[109] = f32::from(atom.formal_charge) / 8.0;
        row[110] = f32::from(atom.total_valence) / 8.0;
        row[111] = finite_or_zero(charge);
        row[112] = finite_or_zero(h_charge);
        row[113] = flag(atom.is_aromatic);
        row[114] = flag(atom.in_ring);
    }
    out
}

pub(super) fn bond_features(mol: &Molecule) -> Vec<f32> {
    let mut out = vec![0.0f32; mol.num_bonds() * BOND_DIM];
    for (row, bond) in out.chunks_exact_mut(BOND_DIM).zip(mol.bonds()) {
        one_hot(&mut row[0..4], bond.bond_type, &BOND_TYPES);
        one_hot(&mut row[4..10], bond.stereo, &STEREOS);
        row[10] = flag(bond.is_conjugated);
        row[11] = flag(bond.is_aromatic);
        row[12] = flag(bond.in_ring);
    }
    out
}

pub(super) fn distances(mol: &Molecule) -> Vec<f32> {
    mol.distance_matrix()
        .into_iter()
        .map(|d| {
            if d == u32::MAX {
                DISCONNECTED_DISTANCE
            } else {
                d as f32
            }
        })
        .collect()
}
