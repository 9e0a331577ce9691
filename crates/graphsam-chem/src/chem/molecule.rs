//! The perceived molecule: parsing, per-atom facts, canonical SMILES, scaffolds, distances.

use std::collections::VecDeque;
use std::sync::OnceLock;

use super::atom::{AtomInfo, BondInfo, BondStereo, BondType, Hybridization};
use super::error::{SmilesError, SmilesErrorKind, from_toolkit};
use super::gasteiger;
use super::mass::atom_mass;
use super::rings::{Graph, RingFacts, simple_rings};

/// A molecule parsed from SMILES and perceived with RDKit's rules (sanitized,
/// hydrogens removed as `Chem.MolFromSmiles` does), with the per-atom and
/// per-bond facts the featurizers read already extracted.
///
/// Cheap to clone (the toolkit molecule is shared); `Send + Sync`.
#[derive(Clone)]
pub struct Molecule {
    toolkit: cosmolkit::Molecule,
    atoms: Vec<AtomInfo>,
    bonds: Vec<BondInfo>,
    /// Neighbours of atom `i` are `neighbors[offsets[i]..offsets[i + 1]]`, as
    /// (atom, bond) pairs in bond order, the order RDKit iterates them.
    offsets: Vec<u32>,
    neighbors: Vec<(u32, u32)>,
    canonical: OnceLock<String>,
    scaffold: OnceLock<String>,
}

impl std::fmt::Debug for Molecule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Molecule")
            .field("smiles", &self.canonical_smiles())
            .field("atoms", &self.atoms.len())
            .field("bonds", &self.bonds.len())
            .finish()
    }
}

/// Longest SMILES accepted, in bytes. MoleculeNet's longest is 1,340; the
/// toolkit recurses over the molecular graph and exhausts a 2 MiB thread stack
/// somewhere between 8,000 and 20,000 chain atoms, so far larger inputs are
/// refused up front rather than risking an abort.
pub const MAX_SMILES_BYTES: usize = 10_000;

/// Parse a SMILES string with `Chem.MolFromSmiles` semantics.
///
/// Empty (or all-whitespace) input is rejected: it has no atoms to learn from;
/// so is input longer than [`MAX_SMILES_BYTES`]. Never panics; every failure
/// is a [`SmilesError`] saying what is wrong.
pub fn parse_smiles(smiles: &str) -> Result<Molecule, SmilesError> {
    if smiles.trim().is_empty() {
        return Err(SmilesError::new(smiles, SmilesErrorKind::Empty, "", None));
    }
    if smiles.len() > MAX_SMILES_BYTES {
        let detail = format!(
            "{} bytes, at most {MAX_SMILES_BYTES} are accepted",
            smiles.len()
        );
        return Err(SmilesError::new(
            smiles,
            SmilesErrorKind::TooLong,
            detail,
            None,
        ));
    }
    let toolkit =
        cosmolkit::Molecule::from_smiles(smiles).map_err(|error| from_toolkit(smiles, &error))?;
    Molecule::perceive(smiles, toolkit)
}

fn internal(smiles: &str, what: &str, error: impl std::fmt::Display) -> SmilesError {
    SmilesError::new(
        smiles,
        SmilesErrorKind::Internal,
        format!("{what}: {error}"),
        None,
    )
}

/// Ring facts from the toolkit's symmetrized SSSR (RDKit's sanitization rings).
fn full_rings(smiles: &str, toolkit: &cosmolkit::Molecule) -> Result<RingFacts, SmilesError> {
    let n_atoms = toolkit.num_atoms();
    let rings = toolkit
        .symmetrized_sssr()
        .map_err(|e| internal(smiles, "ring perception", e))?;
    let mut atom_ring_sizes = vec![[false; 6]; n_atoms];
    let mut atom_in_ring = vec![false; n_atoms];
    for ring in rings.atom_rings() {
        let size = ring.len();
        for atom in ring {
            let index = atom.index();
            if index < n_atoms {
                atom_in_ring[index] = true;
                if (3..=8).contains(&size) {
                    atom_ring_sizes[index][size - 3] = true;
                }
            }
        }
    }
    let mut bond_in_ring = vec![false; toolkit.num_bonds()];
    for ring in rings.bond_rings() {
        for bond in ring {
            if let Some(flag) = bond_in_ring.get_mut(bond.index()) {
                *flag = true;
            }
        }
    }
    Ok(RingFacts {
        atom_in_ring,
        atom_ring_sizes,
        bond_in_ring,
    })
}

fn small<T: TryInto<u8>>(value: T) -> u8 {
    value.try_into().unwrap_or(u8::MAX)
}

impl Molecule {
    fn perceive(smiles: &str, toolkit: cosmolkit::Molecule) -> Result<Self, SmilesError> {
        let n_atoms = toolkit.num_atoms();
        let mut bonds = Vec::with_capacity(toolkit.num_bonds());
        let mut degree = vec![0u32; n_atoms];
        for (index, bond) in toolkit.bonds().iter().enumerate() {
            let (begin, end) = (bond.begin().index(), bond.end().index());
            if begin >= n_atoms || end >= n_atoms {
                return Err(internal(
                    smiles,
                    "bond table",
                    format!("bond {index} out of range"),
                ));
            }
            degree[begin] += 1;
            degree[end] += 1;
            bonds.push(BondInfo {
                begin: begin as u32,
                end: end as u32,
                bond_type: BondType::from_rdkit_code(bond.order_code()),
                is_conjugated: bond.is_conjugated(),
                is_aromatic: bond.is_aromatic(),
                in_ring: false, // set below, once rings are known
                stereo: BondStereo::from_rdkit_code(bond.stereo_code()),
            });
        }

        // Adjacency in bond order, as RDKit's getAtomNeighbors yields it.
        let mut offsets = Vec::with_capacity(n_atoms + 1);
        offsets.push(0u32);
        for d in &degree {
            offsets.push(offsets.last().copied().unwrap_or(0) + d);
        }
        let mut fill: Vec<u32> = offsets[..n_atoms].to_vec();
        let mut neighbors = vec![(0u32, 0u32); 2 * bonds.len()];
        for (index, bond) in bonds.iter().enumerate() {
            for (from, to) in [(bond.begin, bond.end), (bond.end, bond.begin)] {
                let slot = &mut fill[from as usize];
                neighbors[*slot as usize] = (to, index as u32);
                *slot += 1;
            }
        }

        let bond_ends: Vec<(u32, u32)> = bonds.iter().map(|b| (b.begin, b.end)).collect();
        let graph = Graph {
            offsets: &offsets,
            neighbors: &neighbors,
            bond_ends: &bond_ends,
        };
        let rings = match simple_rings(&graph) {
            Some(facts) => facts,
            None => full_rings(smiles, &toolkit)?,
        };
        for (bond, in_ring) in bonds.iter_mut().zip(&rings.bond_in_ring) {
            bond.in_ring = *in_ring;
        }

        let toolkit_atoms = toolkit.atoms();
        let mut atoms = Vec::with_capacity(n_atoms);
        for (index, atom) in toolkit_atoms.iter().enumerate() {
            let total_hs = atom
                .total_hydrogens()
                .map_err(|e| internal(smiles, "hydrogen count", e))?;
            let implicit = atom
                .implicit_hydrogens()
                .map_err(|e| internal(smiles, "implicit valence", e))?;
            let total_valence = atom
                .total_valence()
                .map_err(|e| internal(smiles, "total valence", e))?;
            let range = offsets[index] as usize..offsets[index + 1] as usize;
            let hydrogen_neighbors = neighbors[range]
                .iter()
                .filter(|(other, _)| toolkit_atoms[*other as usize].atomic_number() == 1)
                .count();
            let isotope = atom.isotope().unwrap_or(0);
            let atomic_number = atom.atomic_number();
            let degree = degree[index];
            atoms.push(AtomInfo {
                atomic_number,
                total_degree: small(degree as i64 + i64::from(total_hs)),
                degree: small(degree),
                formal_charge: atom.formal_charge(),
                chiral_tag: small(atom.chiral_tag_code()),
                total_hs: small(total_hs),
                implicit_valence: small(implicit),
                total_valence: small(total_valence),
                hybridization: Hybridization::from_toolkit(atom.hybridization()),
                is_aromatic: atom.is_aromatic(),
                in_ring: rings.atom_in_ring[index],
                ring_sizes: rings.atom_ring_sizes[index],
                mass: atom_mass(atomic_number, isotope),
                isotope,
                hydrogen_neighbors: small(hydrogen_neighbors),
                radical_electrons: atom.radical_electrons(),
            });
        }

        Ok(Self {
            toolkit,
            atoms,
            bonds,
            offsets,
            neighbors,
            canonical: OnceLock::new(),
            scaffold: OnceLock::new(),
        })
    }

    /// The toolkit's molecule, for this module's own algorithms.
    pub(super) fn toolkit(&self) -> &cosmolkit::Molecule {
        &self.toolkit
    }

    /// Number of atoms (hydrogens only where RDKit keeps them as atoms).
    pub fn num_atoms(&self) -> usize {
        self.atoms.len()
    }

    /// Number of bonds.
    pub fn num_bonds(&self) -> usize {
        self.bonds.len()
    }

    /// Per-atom facts, indexed by atom.
    pub fn atoms(&self) -> &[AtomInfo] {
        &self.atoms
    }

    /// Per-bond facts, indexed by bond.
    pub fn bonds(&self) -> &[BondInfo] {
        &self.bonds
    }

    /// Neighbours of `atom` as (neighbour atom, bond index) pairs, in bond order.
    pub fn neighbors(&self, atom: usize) -> &[(u32, u32)] {
        match (self.offsets.get(atom), self.offsets.get(atom + 1)) {
            (Some(&start), Some(&end)) => &self.neighbors[start as usize..end as usize],
            _ => &[],
        }
    }

    /// Canonical isomeric SMILES (`Chem.MolToSmiles(mol)`); computed once, then cached.
    ///
    /// Should the writer fail (never seen on MoleculeNet), this is the empty
    /// string; [`Self::try_canonical_smiles`] reports the reason.
    pub fn canonical_smiles(&self) -> String {
        self.canonical
            .get_or_init(|| self.try_canonical_smiles().unwrap_or_default())
            .clone()
    }

    /// Canonical isomeric SMILES, or why it could not be written.
    pub fn try_canonical_smiles(&self) -> Result<String, String> {
        if let Some(done) = self.canonical.get() {
            return Ok(done.clone());
        }
        write_smiles(&self.toolkit, true)
    }

    /// Bemis–Murcko scaffold SMILES with
    /// `MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)`
    /// semantics: ring systems plus linkers, no stereo; `""` for an acyclic
    /// molecule (and, should the toolkit fail, see [`Self::try_murcko_scaffold`]).
    pub fn murcko_scaffold(&self) -> String {
        self.scaffold
            .get_or_init(|| self.try_murcko_scaffold().unwrap_or_default())
            .clone()
    }

    /// Bemis–Murcko scaffold SMILES, or why it could not be computed.
    pub fn try_murcko_scaffold(&self) -> Result<String, String> {
        if let Some(done) = self.scaffold.get() {
            return Ok(done.clone());
        }
        if self.atoms.iter().all(|atom| !atom.in_ring) {
            return Ok(String::new());
        }
        let scaffold = self.toolkit.murcko_decompose().map_err(|e| e.to_string())?;
        write_smiles(&scaffold, false)
    }

    /// Topological distance matrix (`Chem.GetDistanceMatrix`), n×n row-major:
    /// the number of bonds on a shortest path; `u32::MAX` between fragments.
    pub fn distance_matrix(&self) -> Vec<u32> {
        let n = self.atoms.len();
        let mut distances = vec![u32::MAX; n * n];
        let mut queue = VecDeque::with_capacity(n);
        for source in 0..n {
            let row = &mut distances[source * n..(source + 1) * n];
            row[source] = 0;
            queue.clear();
            queue.push_back(source);
            while let Some(atom) = queue.pop_front() {
                let next = row[atom] + 1;
                for &(other, _) in self.neighbors(atom) {
                    let other = other as usize;
                    if row[other] == u32::MAX {
                        row[other] = next;
                        queue.push_back(other);
                    }
                }
            }
        }
        distances
    }

    /// Gasteiger–Marsili partial charges with `rdPartialCharges.ComputeGasteigerCharges`
    /// semantics (12 iterations): per atom (`_GasteigerCharge`, `_GasteigerHCharge`),
    /// the latter being the total charge on the atom's implicit hydrogens. Atoms
    /// without parameters (metals, ...) can give NaN or infinities, as in RDKit.
    pub fn gasteiger_charges(&self) -> Vec<(f64, f64)> {
        gasteiger::charges(self, gasteiger::ITERATIONS)
    }
}

fn write_smiles(molecule: &cosmolkit::Molecule, isomeric: bool) -> Result<String, String> {
    let params = cosmolkit::SmilesWriteParams {
        isomeric_smiles: isomeric,
        ..Default::default()
    };
    let text = molecule
        .to_smiles_with_params(&params)
        .map_err(|e| e.to_string())?;
    String::from_utf8(text.into_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn molecule_is_shareable() {
        assert_send_sync_clone::<Molecule>();
    }

    #[test]
    fn perceives_atoms_and_bonds() {
        let mol = parse_smiles("C[C@H](N)c1ccccc1/C=C/C").unwrap();
        assert_eq!(mol.num_atoms(), 12);
        assert_eq!(mol.num_bonds(), 12);
        let chiral = &mol.atoms()[1];
        assert_eq!(
            (chiral.chiral_tag, chiral.total_hs, chiral.total_degree),
            (2, 1, 4)
        );
        assert_eq!(mol.atoms()[3].hybridization, Hybridization::Sp2);
        assert!(mol.atoms()[3].is_aromatic && mol.atoms()[3].ring_sizes[3]);
        let double = &mol.bonds()[9];
        assert_eq!(
            (double.bond_type, double.stereo),
            (BondType::Double, BondStereo::E)
        );
        assert_eq!(mol.canonical_smiles(), "C/C=C/c1ccccc1[C@H](C)N");
        assert_eq!(mol.murcko_scaffold(), "c1ccccc1");
    }

    #[test]
    fn distances_are_shortest_paths_and_max_between_fragments() {
        let mol = parse_smiles("CCO.C").unwrap();
        let d = mol.distance_matrix();
        assert_eq!(&d[0..4], &[0, 1, 2, u32::MAX]);
        assert_eq!(d[3 * 4 + 3], 0);
        let ring = parse_smiles("C1CCCCC1").unwrap().distance_matrix();
        assert_eq!(&ring[0..6], &[0, 1, 2, 3, 2, 1]);
    }

    #[test]
    fn acyclic_scaffold_is_empty() {
        assert_eq!(parse_smiles("CCCC(=O)O").unwrap().murcko_scaffold(), "");
    }

    #[test]
    fn errors_say_what_and_where() {
        let error = parse_smiles("CC(").unwrap_err();
        assert_eq!(error.kind(), SmilesErrorKind::Syntax);
        assert_eq!(error.position(), Some(3));
        assert!(error.to_string().contains("at byte 3"), "{error}");
        let error = parse_smiles("c1cccc1").unwrap_err();
        assert_eq!(error.kind(), SmilesErrorKind::Chemistry);
        assert!(error.to_string().contains("kekulize"), "{error}");
        let error = parse_smiles("C(C)(C)(C)(C)C").unwrap_err();
        assert_eq!(error.kind(), SmilesErrorKind::Chemistry);
        assert_eq!(
            parse_smiles("  ").unwrap_err().kind(),
            SmilesErrorKind::Empty
        );
        let huge = "C".repeat(MAX_SMILES_BYTES + 1);
        assert_eq!(
            parse_smiles(&huge).unwrap_err().kind(),
            SmilesErrorKind::TooLong
        );
    }
}
