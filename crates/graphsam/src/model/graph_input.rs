//! Packed molecular graphs: a batch of molecules as one set of atom rows and
//! one set of directed-bond rows, with no padding. Message passing gathers
//! and scatters rows by the index tensors held here.
//!
//! Convention (the data stage produces exactly this): undirected bond `k` of a
//! molecule gives directed bonds `2k` (begin → end) and `2k + 1` (end → begin);
//! every index is global over the batch.

use burn::tensor::{Device, Int, Tensor, TensorData};
use thiserror::Error;

use super::fused::RowMap;

/// A batch of molecules packed into atom and directed-bond tables on a device.
#[derive(Clone, Debug)]
pub struct GraphInput {
    /// Atom features, `n_atoms × atom_dim`.
    pub atom_features: Tensor<2>,
    /// Features of each directed bond (the chemical bond only, without the
    /// source atom's features), `n_bonds × bond_dim`. Empty (`0 × bond_dim`)
    /// when no molecule of the batch has a bond.
    pub bond_features: Tensor<2>,
    /// Atom each directed bond leaves from, `n_bonds`.
    pub bond_source: Tensor<1, Int>,
    /// Atom each directed bond points to, `n_bonds`.
    pub bond_target: Tensor<1, Int>,
    /// Index of the opposite direction of each directed bond, `n_bonds`.
    pub bond_reverse: Tensor<1, Int>,
    /// Molecule (row of the batch) each atom belongs to, `n_atoms`.
    pub atom_molecule: Tensor<1, Int>,
    /// Atoms per molecule as floats, for mean readouts, `n_molecules`.
    pub molecule_atom_counts: Tensor<1>,
    /// Number of molecules in the batch.
    pub n_molecules: usize,
    /// `[source atom features ‖ bond features]` of each directed bond,
    /// `n_bonds × (atom_dim + bond_dim)`, joined once on the host.
    pub bond_inputs: Tensor<2>,
    /// The same gathers and scatters as sparse row maps, which the fused
    /// CPU kernels apply in one pass each.
    pub maps: GraphMaps,
}

/// The message-passing patterns of a batch as fixed sparse row maps.
#[derive(Clone, Debug)]
pub struct GraphMaps {
    /// Atom v ← Σ of the source atoms of its incoming bonds (atoms × atoms).
    pub neighbours: RowMap,
    /// Directed bond u→v ← Σ of the bonds into u except v→u (bonds × bonds).
    pub bond_messages: RowMap,
    /// Atom v ← Σ of its incoming bonds (atoms × bonds).
    pub bonds_into_atoms: RowMap,
    /// Molecule ← mean of its atoms (molecules × atoms; zero for a molecule
    /// without atoms).
    pub atom_mean: RowMap,
    /// Directed bond ← its source atom (bonds × atoms).
    pub source_atoms: RowMap,
}

impl GraphMaps {
    /// The maps of validated index arrays.
    fn new(
        bond_source: &[i64],
        bond_target: &[i64],
        bond_reverse: &[i64],
        atom_molecule: &[i64],
        n_molecules: usize,
    ) -> Self {
        let n_atoms = atom_molecule.len();
        let n_bonds = bond_source.len();
        let neighbours: Vec<(usize, usize, f32)> = (0..n_bonds)
            .map(|b| (bond_target[b] as usize, bond_source[b] as usize, 1.0))
            .collect();
        let into_atoms: Vec<(usize, usize, f32)> = (0..n_bonds)
            .map(|b| (bond_target[b] as usize, b, 1.0))
            .collect();
        // Bonds into each atom, to list the terms of each bond's message.
        let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); n_atoms];
        for b in 0..n_bonds {
            incoming[bond_target[b] as usize].push(b);
        }
        // Σ_{k→u} h_k − h_{v→u}: the reverse bond is one of the k, so it
        // cancels and is left out.
        let mut messages = Vec::new();
        for b in 0..n_bonds {
            for &k in &incoming[bond_source[b] as usize] {
                if k != bond_reverse[b] as usize {
                    messages.push((b, k, 1.0));
                }
            }
        }
        let mut counts = vec![0usize; n_molecules];
        for &m in atom_molecule {
            counts[m as usize] += 1;
        }
        let mean: Vec<(usize, usize, f32)> = atom_molecule
            .iter()
            .enumerate()
            .map(|(a, &m)| (m as usize, a, 1.0 / counts[m as usize] as f32))
            .collect();
        Self {
            neighbours: RowMap::new(n_atoms, n_atoms, &neighbours),
            bond_messages: RowMap::new(n_bonds, n_bonds, &messages),
            bonds_into_atoms: RowMap::new(n_atoms, n_bonds, &into_atoms),
            atom_mean: RowMap::new(n_molecules, n_atoms, &mean),
            source_atoms: RowMap::new(
                n_bonds,
                n_atoms,
                &(0..n_bonds)
                    .map(|b| (b, bond_source[b] as usize, 1.0))
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

/// Why host arrays do not form a valid packed batch.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum GraphInputError {
    /// The batch holds no molecule or no atom at all.
    #[error(
        "a graph batch needs at least one molecule and one atom (got {n_molecules} molecules, {n_atoms} atoms)"
    )]
    Empty {
        /// Molecules declared.
        n_molecules: usize,
        /// Atoms given.
        n_atoms: usize,
    },
    /// A feature width of zero.
    #[error("{table} feature width must be positive")]
    ZeroWidth {
        /// `atom` or `bond`.
        table: &'static str,
    },
    /// An array's length does not match the table it describes.
    #[error("`{field}` has {got} values, expected {expected}")]
    Length {
        /// Name of the array.
        field: &'static str,
        /// Its length.
        got: usize,
        /// The length implied by the other arrays.
        expected: usize,
    },
    /// A feature is NaN or infinite.
    #[error("{table} {row} has a non-finite feature in column {column}")]
    NonFinite {
        /// `atom` or `bond`.
        table: &'static str,
        /// Row of the table.
        row: usize,
        /// Column within the row.
        column: usize,
    },
    /// An index points outside the table it refers to.
    #[error("`{field}` at row {row} is {value}, outside 0..{bound}")]
    IndexOutOfRange {
        /// Name of the index array.
        field: &'static str,
        /// Row of the array.
        row: usize,
        /// The offending index.
        value: i64,
        /// Exclusive upper bound.
        bound: usize,
    },
    /// `bond_reverse` does not pair each bond with its opposite direction.
    #[error(
        "directed bond {bond} and its reverse {reverse} do not connect the same two atoms in opposite directions"
    )]
    BadReverse {
        /// The directed bond.
        bond: usize,
        /// What `bond_reverse` says is its reverse.
        reverse: usize,
    },
}

/// A packed batch of molecular graphs as host arrays, before upload.
///
/// `atom_features` is row-major `n_atoms × atom_dim` with `n_atoms =
/// atom_molecule.len()`; `bond_features` is row-major `n_bonds × bond_dim`
/// with `n_bonds = bond_source.len()`.
#[derive(Debug, Clone, Copy)]
pub struct HostGraphs<'a> {
    /// Width of one atom's features.
    pub atom_dim: usize,
    /// Width of one bond's features.
    pub bond_dim: usize,
    /// Atom features, row-major.
    pub atom_features: &'a [f32],
    /// Directed-bond features, row-major.
    pub bond_features: &'a [f32],
    /// Source atom of each directed bond.
    pub bond_source: &'a [i64],
    /// Target atom of each directed bond.
    pub bond_target: &'a [i64],
    /// The opposite directed bond of each bond.
    pub bond_reverse: &'a [i64],
    /// Molecule (batch position) of each atom.
    pub atom_molecule: &'a [i64],
    /// Molecules in the batch.
    pub n_molecules: usize,
}

impl GraphInput {
    /// Validates host arrays and uploads them to `device`. Molecules without
    /// atoms are allowed (their readout is a zero vector), a batch without
    /// atoms is not.
    pub fn from_host(host: &HostGraphs, device: &Device) -> Result<Self, GraphInputError> {
        let HostGraphs {
            atom_dim,
            bond_dim,
            atom_features,
            bond_features,
            bond_source,
            bond_target,
            bond_reverse,
            atom_molecule,
            n_molecules,
        } = *host;
        let n_atoms = atom_molecule.len();
        let n_bonds = bond_source.len();
        if n_molecules == 0 || n_atoms == 0 {
            return Err(GraphInputError::Empty {
                n_molecules,
                n_atoms,
            });
        }
        if atom_dim == 0 {
            return Err(GraphInputError::ZeroWidth { table: "atom" });
        }
        if bond_dim == 0 {
            return Err(GraphInputError::ZeroWidth { table: "bond" });
        }
        check_length("atom_features", atom_features.len(), n_atoms * atom_dim)?;
        check_length("bond_features", bond_features.len(), n_bonds * bond_dim)?;
        check_length("bond_target", bond_target.len(), n_bonds)?;
        check_length("bond_reverse", bond_reverse.len(), n_bonds)?;
        check_finite("atom", atom_features, atom_dim)?;
        check_finite("bond", bond_features, bond_dim)?;
        check_range("bond_source", bond_source, n_atoms)?;
        check_range("bond_target", bond_target, n_atoms)?;
        check_range("bond_reverse", bond_reverse, n_bonds)?;
        check_range("atom_molecule", atom_molecule, n_molecules)?;
        for bond in 0..n_bonds {
            let reverse = bond_reverse[bond] as usize;
            let paired = bond_reverse[reverse] as usize == bond
                && reverse != bond
                && bond_source[reverse] == bond_target[bond]
                && bond_target[reverse] == bond_source[bond];
            if !paired {
                return Err(GraphInputError::BadReverse { bond, reverse });
            }
        }

        let mut counts = vec![0f32; n_molecules];
        for &molecule in atom_molecule {
            counts[molecule as usize] += 1.0;
        }
        let index = |values: &[i64]| {
            Tensor::<1, Int>::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
        };
        Ok(Self {
            atom_features: Tensor::from_data(
                TensorData::new(atom_features.to_vec(), [n_atoms, atom_dim]),
                device,
            ),
            bond_features: Tensor::from_data(
                TensorData::new(bond_features.to_vec(), [n_bonds, bond_dim]),
                device,
            ),
            bond_source: index(bond_source),
            bond_target: index(bond_target),
            bond_reverse: index(bond_reverse),
            atom_molecule: index(atom_molecule),
            molecule_atom_counts: Tensor::from_data(TensorData::new(counts, [n_molecules]), device),
            n_molecules,
            bond_inputs: Tensor::from_data(
                TensorData::new(
                    join_bond_inputs(
                        atom_features,
                        bond_features,
                        bond_source,
                        atom_dim,
                        bond_dim,
                    ),
                    [n_bonds, atom_dim + bond_dim],
                ),
                device,
            ),
            maps: GraphMaps::new(
                bond_source,
                bond_target,
                bond_reverse,
                atom_molecule,
                n_molecules,
            ),
        })
    }

    /// Number of atoms in the batch.
    pub fn n_atoms(&self) -> usize {
        self.atom_features.dims()[0]
    }

    /// Number of directed bonds in the batch (twice the chemical bonds).
    pub fn n_bonds(&self) -> usize {
        self.bond_source.dims()[0]
    }

    /// Width of an atom feature row.
    pub fn atom_dim(&self) -> usize {
        self.atom_features.dims()[1]
    }

    /// Width of a bond feature row.
    pub fn bond_dim(&self) -> usize {
        self.bond_features.dims()[1]
    }

    /// The same batch on another device (e.g. the autodiff device).
    pub fn to_device(&self, device: &Device) -> Self {
        Self {
            atom_features: self.atom_features.clone().to_device(device),
            bond_features: self.bond_features.clone().to_device(device),
            bond_source: self.bond_source.clone().to_device(device),
            bond_target: self.bond_target.clone().to_device(device),
            bond_reverse: self.bond_reverse.clone().to_device(device),
            atom_molecule: self.atom_molecule.clone().to_device(device),
            molecule_atom_counts: self.molecule_atom_counts.clone().to_device(device),
            n_molecules: self.n_molecules,
            bond_inputs: self.bond_inputs.clone().to_device(device),
            maps: self.maps.clone(),
        }
    }

    /// Input rows of the directed bonds as chemprop and GROVER build them:
    /// `[features of the source atom ‖ bond features]`, `n_bonds × (atom_dim +
    /// bond_dim)`. Only call with at least one bond.
    pub fn source_atom_and_bond_features(&self) -> Tensor<2> {
        self.bond_inputs.clone()
    }
}

/// `[source atom features ‖ bond features]` per directed bond, row-major.
fn join_bond_inputs(
    atom_features: &[f32],
    bond_features: &[f32],
    bond_source: &[i64],
    atom_dim: usize,
    bond_dim: usize,
) -> Vec<f32> {
    let mut joined = Vec::with_capacity(bond_source.len() * (atom_dim + bond_dim));
    for (b, &source) in bond_source.iter().enumerate() {
        let atom = source as usize;
        joined.extend_from_slice(&atom_features[atom * atom_dim..(atom + 1) * atom_dim]);
        joined.extend_from_slice(&bond_features[b * bond_dim..(b + 1) * bond_dim]);
    }
    joined
}

fn check_length(field: &'static str, got: usize, expected: usize) -> Result<(), GraphInputError> {
    if got == expected {
        Ok(())
    } else {
        Err(GraphInputError::Length {
            field,
            got,
            expected,
        })
    }
}

fn check_finite(table: &'static str, values: &[f32], width: usize) -> Result<(), GraphInputError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(GraphInputError::NonFinite {
            table,
            row: i / width,
            column: i % width,
        }),
    }
}

fn check_range(field: &'static str, values: &[i64], bound: usize) -> Result<(), GraphInputError> {
    match values
        .iter()
        .position(|&v| v < 0 || v as u64 >= bound as u64)
    {
        None => Ok(()),
        Some(row) => Err(GraphInputError::IndexOutOfRange {
            field,
            row,
            value: values[row],
            bound,
        }),
    }
}

/// Hand-built molecules with random features, packed the way the data stage
/// packs them; shared by the model tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A molecule given by its atom count and undirected bonds.
    #[derive(Clone, Debug)]
    pub struct MoleculeSketch {
        /// Number of atoms.
        pub n_atoms: usize,
        /// Undirected bonds as (begin, end) local atom indices.
        pub bonds: Vec<(usize, usize)>,
    }

    impl MoleculeSketch {
        /// A molecule with `n_atoms` atoms and the given bonds.
        pub fn new(n_atoms: usize, bonds: &[(usize, usize)]) -> Self {
            Self {
                n_atoms,
                bonds: bonds.to_vec(),
            }
        }

        /// A chain of `n` atoms.
        pub fn chain(n: usize) -> Self {
            Self::new(n, &(1..n).map(|i| (i - 1, i)).collect::<Vec<_>>())
        }

        /// A ring of `n` atoms.
        pub fn ring(n: usize) -> Self {
            let mut bonds: Vec<_> = (1..n).map(|i| (i - 1, i)).collect();
            bonds.push((n - 1, 0));
            Self::new(n, &bonds)
        }
    }

    /// Host arrays of one molecule: atom rows and one row per undirected bond.
    #[derive(Clone, Debug)]
    pub struct FeaturedMolecule {
        /// The graph.
        pub sketch: MoleculeSketch,
        /// `n_atoms × atom_dim`.
        pub atom_features: Vec<f32>,
        /// `n_undirected_bonds × bond_dim` (both directions share a row).
        pub bond_features: Vec<f32>,
    }

    /// Random 0/1-ish features, like one-hot blocks plus a scalar.
    pub fn featurize(
        sketch: &MoleculeSketch,
        atom_dim: usize,
        bond_dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> FeaturedMolecule {
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    if rng.random::<f32>() < 0.3 {
                        1.0
                    } else {
                        rng.random::<f32>() * 0.2
                    }
                })
                .collect()
        };
        FeaturedMolecule {
            sketch: sketch.clone(),
            atom_features: draw(sketch.n_atoms * atom_dim),
            bond_features: draw(sketch.bonds.len() * bond_dim),
        }
    }

    /// The CPU device the model tests run on (ndarray: deterministic sums).
    #[allow(deprecated)]
    pub fn device() -> Device {
        Device::ndarray()
    }

    /// A lone atom, two fragments plus a lone atom, a six-ring with a tail,
    /// and a chain.
    pub fn sketches() -> Vec<MoleculeSketch> {
        let mut ring_with_tail = MoleculeSketch::ring(6);
        ring_with_tail.n_atoms = 8;
        ring_with_tail.bonds.extend([(5, 6), (6, 7)]);
        vec![
            MoleculeSketch::new(1, &[]),
            MoleculeSketch::new(3, &[(0, 1)]),
            ring_with_tail,
            MoleculeSketch::chain(4),
        ]
    }

    /// A row-major `rows × (len / rows)` matrix.
    pub fn matrix(values: Vec<f32>, rows: usize, device: &Device) -> Tensor<2> {
        let cols = values.len() / rows;
        Tensor::from_data(TensorData::new(values, [rows, cols]), device)
    }

    /// A matrix's values, row-major.
    pub fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// The value of a one-element tensor.
    pub fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec::<f32>().unwrap()[0]
    }

    /// Featurizes several sketches with one seeded generator.
    pub fn featurize_all(
        sketches: &[MoleculeSketch],
        atom_dim: usize,
        bond_dim: usize,
        seed: u64,
    ) -> Vec<FeaturedMolecule> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        sketches
            .iter()
            .map(|s| featurize(s, atom_dim, bond_dim, &mut rng))
            .collect()
    }

    /// Packs molecules into one batch.
    pub fn pack(
        molecules: &[FeaturedMolecule],
        atom_dim: usize,
        bond_dim: usize,
        device: &Device,
    ) -> GraphInput {
        let (mut atoms, mut bonds) = (Vec::new(), Vec::new());
        let (mut source, mut target, mut reverse, mut molecule_of) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut atom_offset = 0i64;
        for (m, molecule) in molecules.iter().enumerate() {
            atoms.extend_from_slice(&molecule.atom_features);
            molecule_of.extend(std::iter::repeat_n(m as i64, molecule.sketch.n_atoms));
            for (k, &(begin, end)) in molecule.sketch.bonds.iter().enumerate() {
                let row = &molecule.bond_features[k * bond_dim..(k + 1) * bond_dim];
                let forward = source.len() as i64;
                for (from, to, rev) in [(begin, end, forward + 1), (end, begin, forward)] {
                    bonds.extend_from_slice(row);
                    source.push(atom_offset + from as i64);
                    target.push(atom_offset + to as i64);
                    reverse.push(rev);
                }
            }
            atom_offset += molecule.sketch.n_atoms as i64;
        }
        GraphInput::from_host(
            &HostGraphs {
                atom_dim,
                bond_dim,
                atom_features: &atoms,
                bond_features: &bonds,
                bond_source: &source,
                bond_target: &target,
                bond_reverse: &reverse,
                atom_molecule: &molecule_of,
                n_molecules: molecules.len(),
            },
            device,
        )
        .expect("fixture batches are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(deprecated)]
    fn device() -> Device {
        Device::ndarray()
    }

    /// Atom features, bond features, source, target, reverse, molecule.
    type HostArrays = (Vec<f32>, Vec<f32>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>);

    fn ethanol_like() -> HostArrays {
        // Three atoms in a chain, two undirected bonds -> four directed bonds.
        (
            vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0],
            vec![0, 1, 1, 2],
            vec![1, 0, 2, 1],
            vec![1, 0, 3, 2],
            vec![0, 0, 0],
        )
    }

    #[test]
    fn uploads_valid_arrays_and_counts_atoms_per_molecule() {
        let (atoms, bonds, source, target, reverse, _) = ethanol_like();
        // Second molecule: a lone atom with no bond.
        let mut atoms2 = atoms.clone();
        atoms2.extend_from_slice(&[0.5, 0.5]);
        let input = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 2,
                bond_dim: 2,
                atom_features: &atoms2,
                bond_features: &bonds,
                bond_source: &source,
                bond_target: &target,
                bond_reverse: &reverse,
                atom_molecule: &[0, 0, 0, 1],
                n_molecules: 2,
            },
            &device(),
        )
        .unwrap();
        assert_eq!((input.n_atoms(), input.n_bonds()), (4, 4));
        assert_eq!(
            input
                .molecule_atom_counts
                .to_data()
                .try_to_vec::<f32>()
                .unwrap(),
            vec![3.0, 1.0]
        );
        let joined = input.source_atom_and_bond_features();
        assert_eq!(joined.dims(), [4, 4]);
        // Bond 1 leaves atom 1: [atom 1 features ‖ bond row 1].
        assert_eq!(
            joined
                .slice([1..2, 0..4])
                .to_data()
                .try_to_vec::<f32>()
                .unwrap(),
            vec![0.0, 1.0, 1.0, 2.0]
        );
    }

    #[test]
    fn accepts_a_batch_without_bonds() {
        let input = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 3,
                bond_dim: 2,
                atom_features: &[1.0; 6],
                bond_features: &[],
                bond_source: &[],
                bond_target: &[],
                bond_reverse: &[],
                atom_molecule: &[0, 1],
                n_molecules: 2,
            },
            &device(),
        )
        .unwrap();
        assert_eq!(input.n_bonds(), 0);
        assert_eq!(input.bond_dim(), 2);
    }

    #[test]
    fn rejects_inconsistent_arrays_with_the_offending_field() {
        let (atoms, bonds, source, target, reverse, molecule) = ethanol_like();
        let d = device();
        let err = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 2,
                bond_dim: 2,
                atom_features: &atoms[..5],
                bond_features: &bonds,
                bond_source: &source,
                bond_target: &target,
                bond_reverse: &reverse,
                atom_molecule: &molecule,
                n_molecules: 1,
            },
            &d,
        )
        .unwrap_err();
        assert_eq!(
            err,
            GraphInputError::Length {
                field: "atom_features",
                got: 5,
                expected: 6
            }
        );

        let err = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 2,
                bond_dim: 2,
                atom_features: &atoms,
                bond_features: &bonds,
                bond_source: &[0, 1, 1, 3],
                bond_target: &target,
                bond_reverse: &reverse,
                atom_molecule: &molecule,
                n_molecules: 1,
            },
            &d,
        )
        .unwrap_err();
        assert_eq!(
            err,
            GraphInputError::IndexOutOfRange {
                field: "bond_source",
                row: 3,
                value: 3,
                bound: 3
            }
        );

        let err = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 2,
                bond_dim: 2,
                atom_features: &atoms,
                bond_features: &bonds,
                bond_source: &source,
                bond_target: &target,
                bond_reverse: &[1, 0, 2, 3],
                atom_molecule: &molecule,
                n_molecules: 1,
            },
            &d,
        )
        .unwrap_err();
        assert_eq!(
            err,
            GraphInputError::BadReverse {
                bond: 2,
                reverse: 2
            }
        );

        let mut nan_atoms = atoms.clone();
        nan_atoms[3] = f32::NAN;
        let err = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 2,
                bond_dim: 2,
                atom_features: &nan_atoms,
                bond_features: &bonds,
                bond_source: &source,
                bond_target: &target,
                bond_reverse: &reverse,
                atom_molecule: &molecule,
                n_molecules: 1,
            },
            &d,
        )
        .unwrap_err();
        assert_eq!(
            err,
            GraphInputError::NonFinite {
                table: "atom",
                row: 1,
                column: 1
            }
        );

        let err = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 2,
                bond_dim: 2,
                atom_features: &[],
                bond_features: &[],
                bond_source: &[],
                bond_target: &[],
                bond_reverse: &[],
                atom_molecule: &[],
                n_molecules: 1,
            },
            &d,
        )
        .unwrap_err();
        assert_eq!(
            err,
            GraphInputError::Empty {
                n_molecules: 1,
                n_atoms: 0
            }
        );

        let err = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 2,
                bond_dim: 2,
                atom_features: &atoms,
                bond_features: &bonds,
                bond_source: &source,
                bond_target: &target,
                bond_reverse: &reverse,
                atom_molecule: &[0, 0, 1],
                n_molecules: 1,
            },
            &d,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            GraphInputError::IndexOutOfRange {
                field: "atom_molecule",
                row: 2,
                ..
            }
        ));
    }
}
