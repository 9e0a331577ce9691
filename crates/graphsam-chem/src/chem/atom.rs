//! Per-atom and per-bond facts, in RDKit's vocabulary and numbering.

/// Orbital hybridization, numbered as RDKit's `HybridizationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hybridization {
    /// Not assigned.
    Unspecified,
    /// s (e.g. hydrogen, isolated ions).
    S,
    /// sp.
    Sp,
    /// sp2.
    Sp2,
    /// sp3.
    Sp3,
    /// sp2d (square planar).
    Sp2d,
    /// sp3d.
    Sp3d,
    /// sp3d2.
    Sp3d2,
    /// Anything else.
    Other,
}

impl Hybridization {
    /// RDKit's integer code (`int(atom.GetHybridization())`).
    pub fn rdkit_code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::S => 1,
            Self::Sp => 2,
            Self::Sp2 => 3,
            Self::Sp3 => 4,
            Self::Sp2d => 5,
            Self::Sp3d => 6,
            Self::Sp3d2 => 7,
            Self::Other => 8,
        }
    }

    pub(crate) fn from_toolkit(value: cosmolkit::Hybridization) -> Self {
        use cosmolkit::Hybridization as H;
        match value {
            H::Unspecified => Self::Unspecified,
            H::S => Self::S,
            H::Sp => Self::Sp,
            H::Sp2 => Self::Sp2,
            H::Sp3 => Self::Sp3,
            H::Sp2d => Self::Sp2d,
            H::Sp3d => Self::Sp3d,
            H::Sp3d2 => Self::Sp3d2,
            H::Other => Self::Other,
        }
    }
}

/// Bond type, numbered as RDKit's `BondType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BondType {
    /// Single bond.
    Single,
    /// Double bond.
    Double,
    /// Triple bond.
    Triple,
    /// Quadruple bond (`$`).
    Quadruple,
    /// Aromatic bond.
    Aromatic,
    /// Dative bond (`->`).
    Dative,
    /// Any other RDKit bond type, by its RDKit code.
    Other(u8),
}

impl BondType {
    /// RDKit's integer code (`int(bond.GetBondType())`).
    pub fn rdkit_code(self) -> u8 {
        match self {
            Self::Single => 1,
            Self::Double => 2,
            Self::Triple => 3,
            Self::Quadruple => 4,
            Self::Aromatic => 12,
            Self::Dative => 17,
            Self::Other(code) => code,
        }
    }

    pub(crate) fn from_rdkit_code(code: i64) -> Self {
        match code {
            1 => Self::Single,
            2 => Self::Double,
            3 => Self::Triple,
            4 => Self::Quadruple,
            12 => Self::Aromatic,
            17 => Self::Dative,
            other => Self::Other(u8::try_from(other).unwrap_or(u8::MAX)),
        }
    }
}

/// Double-bond (or atropisomer) stereo, numbered as RDKit's `BondStereo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BondStereo {
    /// No stereo (0).
    None,
    /// Unspecified / either (1).
    Any,
    /// Z (2).
    Z,
    /// E (3).
    E,
    /// cis relative to the stereo atoms (4); what SMILES `/` `\` produce.
    Cis,
    /// trans relative to the stereo atoms (5).
    Trans,
    /// Atropisomer, clockwise (6).
    AtropCw,
    /// Atropisomer, counter-clockwise (7).
    AtropCcw,
}

impl BondStereo {
    /// RDKit's integer code (`int(bond.GetStereo())`).
    pub fn rdkit_code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Any => 1,
            Self::Z => 2,
            Self::E => 3,
            Self::Cis => 4,
            Self::Trans => 5,
            Self::AtropCw => 6,
            Self::AtropCcw => 7,
        }
    }

    pub(crate) fn from_rdkit_code(code: i64) -> Self {
        match code {
            1 => Self::Any,
            2 => Self::Z,
            3 => Self::E,
            4 => Self::Cis,
            5 => Self::Trans,
            6 => Self::AtropCw,
            7 => Self::AtropCcw,
            _ => Self::None,
        }
    }
}

/// Everything the featurizers need to know about one atom (RDKit semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct AtomInfo {
    /// Atomic number (0 for a dummy atom `*`).
    pub atomic_number: u8,
    /// `GetTotalDegree()`: graph neighbours plus attached hydrogens.
    pub total_degree: u8,
    /// `GetDegree()`: graph neighbours (explicit hydrogen atoms included).
    pub degree: u8,
    /// Formal charge.
    pub formal_charge: i8,
    /// RDKit `ChiralType` code (0 unspecified, 1 CW, 2 CCW, 3 other, ...).
    pub chiral_tag: u8,
    /// `GetTotalNumHs()`: implicit plus bracket hydrogens, not hydrogen neighbours.
    pub total_hs: u8,
    /// `GetImplicitValence()`.
    pub implicit_valence: u8,
    /// `GetTotalValence()`.
    pub total_valence: u8,
    /// Hybridization.
    pub hybridization: Hybridization,
    /// Aromatic atom.
    pub is_aromatic: bool,
    /// Member of at least one ring of the symmetrized SSSR.
    pub in_ring: bool,
    /// Member of a ring of size 3, 4, 5, 6, 7, 8 (`IsAtomInRingOfSize`).
    pub ring_sizes: [bool; 6],
    /// `GetMass()`: standard atomic weight, or the exact isotope mass when an isotope is set.
    pub mass: f64,
    /// Isotope mass number (0 when none is given).
    pub isotope: u16,
    /// Graph neighbours that are hydrogen atoms (so `GetTotalNumHs(includeNeighbors=True)`
    /// is `total_hs + hydrogen_neighbors`).
    pub hydrogen_neighbors: u8,
    /// Radical electrons.
    pub radical_electrons: u8,
}

/// Everything the featurizers need to know about one bond (RDKit semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct BondInfo {
    /// Index of the first atom.
    pub begin: u32,
    /// Index of the second atom.
    pub end: u32,
    /// Bond type.
    pub bond_type: BondType,
    /// Part of a conjugated system.
    pub is_conjugated: bool,
    /// Aromatic bond.
    pub is_aromatic: bool,
    /// Member of at least one ring of the symmetrized SSSR.
    pub in_ring: bool,
    /// Stereo, RDKit numbering.
    pub stereo: BondStereo,
}
