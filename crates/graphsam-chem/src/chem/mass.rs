//! Atomic masses with RDKit's `Atom::GetMass` rules.

use super::periodic_table::{ATOMIC_WEIGHTS, ISOTOPE_MASSES};

/// Mass of an atom: the standard atomic weight, or with an isotope the exact
/// mass of that isotope; an isotope missing from RDKit's table weighs its mass
/// number, except on a dummy atom, which always weighs 0.
pub fn atom_mass(atomic_number: u8, isotope: u16) -> f64 {
    let z = usize::from(atomic_number);
    if isotope == 0 {
        return ATOMIC_WEIGHTS.get(z).copied().unwrap_or(0.0);
    }
    if z == 0 {
        return 0.0;
    }
    let tabulated = ISOTOPE_MASSES.get(z).and_then(|(first, masses)| {
        let offset = isotope.checked_sub(*first)?;
        masses.get(usize::from(offset)).copied()
    });
    tabulated.unwrap_or(f64::from(isotope))
}

#[cfg(test)]
mod tests {
    use super::atom_mass;

    #[test]
    fn weights_and_isotopes_follow_rdkit() {
        assert_eq!(atom_mass(6, 0), 12.011);
        assert_eq!(atom_mass(6, 13), 13.00335484);
        assert_eq!(atom_mass(1, 2), 2.014101778);
        assert_eq!(atom_mass(6, 300), 300.0); // untabulated isotope: its mass number
        assert_eq!(atom_mass(6, 1), 1.0);
        assert_eq!(atom_mass(0, 13), 0.0); // dummy atom
        assert_eq!(atom_mass(118, 0), 294.0);
        assert_eq!(atom_mass(200, 0), 0.0); // out of the table: no panic
    }
}
