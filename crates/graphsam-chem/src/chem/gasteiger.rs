//! Gasteiger–Marsili partial charges (partial equalization of orbital
//! electronegativity, PEOE), with RDKit's `computeGasteigerCharges` conventions.
//!
//! J. Gasteiger, M. Marsili, "Iterative partial equalization of orbital
//! electronegativity — a rapid access to atomic charges", Tetrahedron 36 (1980) 3219.
//! Each atom type has an electronegativity polynomial χ(q) = a + b·q + c·q²;
//! every iteration moves charge along each bond in proportion to the
//! electronegativity difference divided by χ⁺ (= a + b + c) of the less
//! electronegative partner, damped by ½, ¼, ⅛, .... Implicit hydrogens are
//! handled as pseudo-atoms sharing one charge. Formal charges start spread
//! over same-element atoms of a conjugated system.

use super::atom::Hybridization;
use super::molecule::Molecule;

/// Iterations RDKit runs by default.
pub const ITERATIONS: usize = 12;

/// χ⁺ used for hydrogen (the published value, not a + b + c).
const HYDROGEN_CHI_PLUS: f64 = 20.02;
/// Damping of the first iteration; it halves every iteration.
const INITIAL_DAMPING: f64 = 0.5;
const DAMPING_SCALE: f64 = 0.5;

/// Parameter modes: the hybridization RDKit assigns, plus sulfur oxidation
/// states for sulfur without hybridization, and `*` for hydrogen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sp3,
    Sp2,
    Sp,
    SulfurOneOxygen,
    SulfurTwoOxygens,
    Hydrogen,
    Unknown,
}

/// (a, b, c) of χ(q) = a + b q + c q² per (element, mode). The first block is
/// Gasteiger & Marsili's table; the second the values RDKit adds for P(sp2),
/// Si, B, Be, Mg and Al (derived with PyBabel's procedure).
const PARAMETERS: &[(u8, Mode, [f64; 3])] = &[
    (1, Mode::Hydrogen, [7.17, 6.24, -0.56]),
    (6, Mode::Sp3, [7.98, 9.18, 1.88]),
    (6, Mode::Sp2, [8.79, 9.32, 1.51]),
    (6, Mode::Sp, [10.39, 9.45, 0.73]),
    (7, Mode::Sp3, [11.54, 10.82, 1.36]),
    (7, Mode::Sp2, [12.87, 11.15, 0.85]),
    (7, Mode::Sp, [15.68, 11.7, -0.27]),
    (8, Mode::Sp3, [14.18, 12.92, 1.39]),
    (8, Mode::Sp2, [17.07, 13.79, 0.47]),
    (9, Mode::Sp3, [14.66, 13.85, 2.31]),
    (17, Mode::Sp3, [11.00, 9.69, 1.35]),
    (35, Mode::Sp3, [10.08, 8.47, 1.16]),
    (53, Mode::Sp3, [9.9, 7.96, 0.96]),
    (16, Mode::Sp3, [10.14, 9.13, 1.38]),
    (16, Mode::SulfurOneOxygen, [10.14, 9.13, 1.38]),
    (16, Mode::SulfurTwoOxygens, [12.00, 10.81, 1.20]),
    (16, Mode::Sp2, [10.88, 9.49, 1.33]),
    (15, Mode::Sp3, [8.90, 8.24, 0.96]),
    (15, Mode::Sp2, [9.665, 8.530, 0.735]),
    (14, Mode::Sp3, [7.300, 6.567, 0.657]),
    (14, Mode::Sp2, [7.905, 6.748, 0.443]),
    (14, Mode::Sp, [9.065, 7.027, -0.002]),
    (5, Mode::Sp3, [5.980, 6.820, 1.605]),
    (5, Mode::Sp2, [6.420, 6.807, 1.322]),
    (4, Mode::Sp3, [3.845, 6.755, 3.165]),
    (4, Mode::Sp2, [4.005, 6.725, 3.035]),
    (12, Mode::Sp2, [3.565, 5.572, 2.197]),
    (12, Mode::Sp3, [3.300, 5.587, 2.447]),
    (12, Mode::Sp, [4.040, 5.472, 1.823]),
    (13, Mode::Sp3, [5.375, 4.953, 0.867]),
    (13, Mode::Sp2, [5.795, 5.020, 0.695]),
];

/// Atoms without parameters get all-zero coefficients, as RDKit's fallback
/// type `X` does (which makes their χ⁺ zero and their charges NaN or infinite).
const UNKNOWN: [f64; 3] = [0.0, 0.0, 0.0];

fn parameters(atomic_number: u8, mode: Mode) -> [f64; 3] {
    PARAMETERS
        .iter()
        .find(|(z, m, _)| *z == atomic_number && *m == mode)
        .map_or(UNKNOWN, |(_, _, abc)| *abc)
}

fn mode_of(molecule: &Molecule, atom: usize) -> Mode {
    let info = &molecule.atoms()[atom];
    match info.hybridization {
        Hybridization::Sp3 => Mode::Sp3,
        Hybridization::Sp2 => Mode::Sp2,
        Hybridization::Sp => Mode::Sp,
        _ if info.atomic_number == 1 => Mode::Hydrogen,
        _ if info.atomic_number == 16 => {
            let oxygens = molecule
                .neighbors(atom)
                .iter()
                .filter(|(other, _)| molecule.atoms()[*other as usize].atomic_number == 8)
                .count();
            match oxygens {
                2 => Mode::SulfurTwoOxygens,
                1 => Mode::SulfurOneOxygen,
                _ => Mode::Sp3,
            }
        }
        _ => Mode::Unknown,
    }
}

/// Starting charges: a formal charge on an atom in a conjugated system is
/// shared equally with the same-element atoms two conjugated bonds away (so the
/// two nitrogens of an amidinium start at +½ each), as RDKit does.
fn initial_charges(molecule: &Molecule) -> Vec<f64> {
    let atoms = molecule.atoms();
    let bonds = molecule.bonds();
    let mut charges = vec![0.0f64; atoms.len()];
    let mut members = Vec::new();
    for index in 0..atoms.len() {
        let mut formal = f64::from(atoms[index].formal_charge);
        if formal.abs() <= f64::EPSILON || charges[index].abs() >= f64::EPSILON {
            continue;
        }
        members.clear();
        members.push(index);
        for &(middle, first_bond) in molecule.neighbors(index) {
            if !bonds[first_bond as usize].is_conjugated {
                continue;
            }
            for &(far, second_bond) in molecule.neighbors(middle as usize) {
                if second_bond == first_bond || !bonds[second_bond as usize].is_conjugated {
                    continue;
                }
                let far = far as usize;
                if atoms[far].atomic_number == atoms[index].atomic_number {
                    formal += f64::from(atoms[far].formal_charge);
                    members.push(far);
                }
            }
        }
        let share = formal / members.len() as f64;
        for &member in &members {
            charges[member] = share;
        }
    }
    charges
}

/// Per atom (charge, total charge of its implicit hydrogens) after `iterations` rounds.
pub(crate) fn charges(molecule: &Molecule, iterations: usize) -> Vec<(f64, f64)> {
    let atoms = molecule.atoms();
    let n = atoms.len();
    let mut charge = initial_charges(molecule);
    let coefficients: Vec<[f64; 3]> = (0..n)
        .map(|i| parameters(atoms[i].atomic_number, mode_of(molecule, i)))
        .collect();
    let chi_plus: Vec<f64> = (0..n)
        .map(|i| {
            let [a, b, c] = coefficients[i];
            if atoms[i].atomic_number == 1 {
                HYDROGEN_CHI_PLUS
            } else {
                a + b + c
            }
        })
        .collect();
    let [ha, hb, hc] = parameters(1, Mode::Hydrogen);
    let mut hydrogen_charge = vec![0.0f64; n];
    let mut chi = vec![0.0f64; n];
    let mut damping = INITIAL_DAMPING;

    for _ in 0..iterations {
        for i in 0..n {
            let [a, b, c] = coefficients[i];
            chi[i] = a + charge[i] * (b + c * charge[i]);
        }
        for i in 0..n {
            let mut transfer = 0.0;
            for &(other, _) in molecule.neighbors(i) {
                let other = other as usize;
                let difference = chi[other] - chi[i];
                // Divide by χ⁺ of the atom that gives up electrons, written as RDKit
                // does so that rounding (and NaN/inf propagation) agrees.
                let sign = if difference < 0.0 { 0.0 } else { 1.0 };
                transfer += difference / (sign * (chi_plus[i] - chi_plus[other]) + chi_plus[other]);
            }
            let hydrogens = atoms[i].total_hs;
            if hydrogens > 0 {
                let count = f64::from(hydrogens);
                let per_hydrogen = hydrogen_charge[i] / count;
                let difference = ha + per_hydrogen * (hb + hc * per_hydrogen) - chi[i];
                let sign = if difference < 0.0 { 0.0 } else { 1.0 };
                let step =
                    difference / (sign * (chi_plus[i] - HYDROGEN_CHI_PLUS) + HYDROGEN_CHI_PLUS);
                transfer += count * step;
                hydrogen_charge[i] -= count * step * damping;
            }
            charge[i] += damping * transfer;
        }
        damping *= DAMPING_SCALE;
    }
    charge.into_iter().zip(hydrogen_charge).collect()
}

#[cfg(test)]
mod tests {
    use crate::chem::parse_smiles;

    #[test]
    fn charges_balance_and_follow_electronegativity() {
        let mol = parse_smiles("CCO").unwrap();
        let q = mol.gasteiger_charges();
        let total: f64 = q.iter().map(|(atom, hs)| atom + hs).sum();
        assert!(total.abs() < 1e-12, "charge is conserved: {total}");
        assert!(
            q[2].0 < q[1].0 && q[1].0 > q[0].0,
            "oxygen pulls electrons: {q:?}"
        );
    }

    #[test]
    fn formal_charge_is_shared_across_a_conjugated_system() {
        // Guanidinium: the +1 starts spread over the three nitrogens.
        let mol = parse_smiles("NC(N)=[NH2+]").unwrap();
        let q = mol.gasteiger_charges();
        let total: f64 = q.iter().map(|(atom, hs)| atom + hs).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(
            (q[0].0 - q[2].0).abs() < 1e-12,
            "equivalent nitrogens: {q:?}"
        );
    }

    #[test]
    fn unparameterised_atoms_give_nan_not_a_panic() {
        let mol = parse_smiles("C[Hg]C").unwrap();
        assert!(mol.gasteiger_charges().iter().any(|(q, _)| !q.is_finite()));
    }
}
