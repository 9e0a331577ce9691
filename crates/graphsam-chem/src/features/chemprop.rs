//! chemprop v1 features (`chemprop/features/featurization.py`, MAX_ATOMIC_NUM 100):
//! atom 133 = atomic number − 1 in 0..99 + unk (101) · total degree 0..5 + unk (7)
//! · formal charge [−1, −2, 1, 2, 0] + unk (6) · chiral tag 0..3 + unk (5)
//! · total H 0..4 + unk (6) · hybridization SP..SP3D2 + unk (6) · aromatic · mass/100;
//! bond 14 = [no-bond flag (0), single, double, triple, aromatic, conjugated,
//! in ring] + stereo 0..5 + unk (7).

use super::encoding::{flag, one_hot};
use crate::chem::{AtomInfo, BondType, Hybridization, Molecule};

/// Width of a chemprop atom row.
pub(super) const ATOM_DIM: usize = 133;
/// Width of a chemprop bond row.
pub(super) const BOND_DIM: usize = 14;

/// Hybridizations with a slot of their own, in order (SP, SP2, SP3, SP3D, SP3D2).
pub(super) const HYBRIDIZATIONS: [Hybridization; 5] = [
    Hybridization::Sp,
    Hybridization::Sp2,
    Hybridization::Sp3,
    Hybridization::Sp3d,
    Hybridization::Sp3d2,
];

/// Fill the first 133 columns shared by chemprop and GROVER; the formal-charge
/// block (columns 108..114) is left to the caller, whose encodings differ.
pub(super) fn write_common(row: &mut [f32], atom: &AtomInfo) {
    let atomic: Vec<i32> = (0..100).collect();
    one_hot(&mut row[0..101], i32::from(atom.atomic_number) - 1, &atomic);
    one_hot(&mut row[101..108], atom.total_degree, &[0, 1, 2, 3, 4, 5]);
    one_hot(&mut row[114..119], atom.chiral_tag, &[0, 1, 2, 3]);
    one_hot(&mut row[119..125], atom.total_hs, &[0, 1, 2, 3, 4]);
    one_hot(&mut row[125..131], atom.hybridization, &HYBRIDIZATIONS);
    row[131] = flag(atom.is_aromatic);
    row[132] = (atom.mass * 0.01) as f32;
}

pub(super) fn atom_features(mol: &Molecule) -> Vec<f32> {
    let mut out = vec![0.0f32; mol.num_atoms() * ATOM_DIM];
    for (row, atom) in out.chunks_exact_mut(ATOM_DIM).zip(mol.atoms()) {
        write_common(row, atom);
        one_hot(&mut row[108..114], atom.formal_charge, &[-1, -2, 1, 2, 0]);
    }
    out
}

pub(super) fn bond_features(mol: &Molecule) -> Vec<f32> {
    let mut out = vec![0.0f32; mol.num_bonds() * BOND_DIM];
    for (row, bond) in out.chunks_exact_mut(BOND_DIM).zip(mol.bonds()) {
        row[1] = flag(bond.bond_type == BondType::Single);
        row[2] = flag(bond.bond_type == BondType::Double);
        row[3] = flag(bond.bond_type == BondType::Triple);
        row[4] = flag(bond.bond_type == BondType::Aromatic);
        row[5] = flag(bond.is_conjugated);
        row[6] = flag(bond.in_ring);
        one_hot(
            &mut row[7..14],
            bond.stereo.rdkit_code(),
            &[0, 1, 2, 3, 4, 5],
        );
    }
    out
}
