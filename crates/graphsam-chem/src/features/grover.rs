//! GROVER features (`grover/data/molgraph.py`): chemprop's 133 atom columns,
//! except the formal-charge block, plus 18 extras — implicit valence 0..6 + unk
//! (8) · H-acceptor, H-donor, acidic, basic SMARTS membership (4) · in a ring
//! of size 3..8 (6) — for 151; bonds use chemprop's 14 columns.
//!
//! Reproduced quirk: GROVER's one-hot helper indexes a choice list containing
//! negatives by the value itself, so the 6-slot formal-charge block gets the
//! slot `charge` with Python's negative indexing (0→0, +1→1, +2→2, −2→4,
//! −1→5, +3→3, −3→3, ...). Where GROVER would raise IndexError (charge ≥ 6 or
//! ≤ −7) the unknown slot (5) is used instead.

use std::sync::OnceLock;

use super::chemprop::write_common;
use super::encoding::{flag, one_hot};
use crate::chem::{Molecule, SmartsPattern};

/// Width of a GROVER atom row.
pub(super) const ATOM_DIM: usize = 151;

/// GROVER's pharmacophore SMARTS, in feature order.
const ACCEPTOR: &str = "[$([O,S;H1;v2;!$(*-*=[O,N,P,S])]),$([O,S;H0;v2]),$([O,S;-]),\
$([N;v3;!$(N-*=[O,N,P,S])]),n&H0&+0,$([o,s;+0;!$([o,s]:n);!$([o,s]:c:n)])]";
const DONOR: &str = "[$([N;!H0;v3,v4&+1]),$([O,S;H1;+0]),n&H1&+0]";
const ACIDIC: &str = "[$([C,S](=[O,S,P])-[O;H1,-1])]";
const BASIC: &str = "[#7;+,$([N;H2&+0][$([C,a]);!$([C,a](=O))]),$([N;H1&+0]([$([C,a]);\
!$([C,a](=O))])[$([C,a]);!$([C,a](=O))]),$([N;H0&+0]([C;!$(C(=O))])([C;!$(C(=O))])[C;!$(C(=O))])]";

fn patterns() -> &'static [Option<SmartsPattern>; 4] {
    static PATTERNS: OnceLock<[Option<SmartsPattern>; 4]> = OnceLock::new();
    // The texts are constants checked by a test, so `ok()` never hides a user error.
    PATTERNS.get_or_init(|| [ACCEPTOR, DONOR, ACIDIC, BASIC].map(|t| SmartsPattern::new(t).ok()))
}

/// GROVER's formal-charge slot (see the module note).
fn charge_slot(charge: i8) -> usize {
    match charge {
        0..=5 => charge as usize,
        -6..=-1 => (6 + i32::from(charge)) as usize,
        _ => 5,
    }
}

pub(super) fn atom_features(mol: &Molecule) -> Vec<f32> {
    let n = mol.num_atoms();
    let flags: Vec<Vec<bool>> = patterns()
        .iter()
        .map(|p| {
            p.as_ref()
                .map_or_else(|| vec![false; n], |p| mol.atoms_matching(p))
        })
        .collect();
    let mut out = vec![0.0f32; n * ATOM_DIM];
    for (i, (row, atom)) in out.chunks_exact_mut(ATOM_DIM).zip(mol.atoms()).enumerate() {
        write_common(row, atom);
        row[108 + charge_slot(atom.formal_charge)] = 1.0;
        one_hot(
            &mut row[133..141],
            atom.implicit_valence,
            &[0, 1, 2, 3, 4, 5, 6],
        );
        for (k, hits) in flags.iter().enumerate() {
            row[141 + k] = flag(hits[i]);
        }
        for (k, &in_ring) in atom.ring_sizes.iter().enumerate() {
            row[145 + k] = flag(in_ring);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smarts_compile() {
        assert!(patterns().iter().all(Option::is_some));
    }

    #[test]
    fn charge_slots_follow_python_indexing() {
        let slots: Vec<usize> = [0, 1, 2, -2, -1, 3, -3, 6, -7].map(charge_slot).to_vec();
        assert_eq!(slots, vec![0, 1, 2, 4, 5, 3, 3, 5, 5]);
    }

    #[test]
    fn acetic_acid_flags() {
        let mol = crate::chem::parse_smiles("CC(=O)O").unwrap();
        let rows = atom_features(&mol);
        let row = |i: usize| &rows[i * ATOM_DIM..(i + 1) * ATOM_DIM];
        assert_eq!(
            row(1)[141..145],
            [0.0, 0.0, 1.0, 0.0],
            "carboxyl carbon is acidic"
        );
        assert_eq!(row(2)[141..145], [1.0, 0.0, 0.0, 0.0], "carbonyl O accepts");
        // RDKit agrees: an acid's OH is excluded from the acceptor pattern.
        assert_eq!(row(3)[141..145], [0.0, 1.0, 0.0, 0.0], "hydroxyl O donates");
    }
}
