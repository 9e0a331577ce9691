//! Minibatches of featurized molecules as plain host arrays, in the two
//! layouts the backbones consume: dense and padded per batch (CoMPT) and
//! packed atoms + directed bonds with index arrays (GROVER, D-MPNN).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::features::{DISCONNECTED_DISTANCE, MolGraph};

use super::error::{DataError, Result};
use super::load::MoleculeDataset;
use super::scaling::TargetScaler;
use super::split::shuffle;

/// Splits `indices` into minibatches of at most `batch_size`, shuffled with
/// a generator seeded by `seed` on stream `epoch`: the same (seed, epoch)
/// always gives the same batches, and each epoch a different order.
pub fn shuffled_batches(
    indices: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut order = indices.to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    shuffle(&mut order, &mut rng);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Splits `indices` into minibatches in the given order (for evaluation).
pub fn sequential_batches(indices: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    indices
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Targets and mask of the molecules, row-major B × T; missing labels get
/// target 0 and mask 0. `scaler` standardises present labels.
fn gather_targets(
    dataset: &MoleculeDataset,
    molecules: &[usize],
    scaler: Option<&TargetScaler>,
) -> (Vec<f32>, Vec<f32>) {
    let t = dataset.n_tasks;
    let mut targets = Vec::with_capacity(molecules.len() * t);
    let mut mask = Vec::with_capacity(molecules.len() * t);
    for &m in molecules {
        for (task, &y) in dataset.targets_of(m).iter().enumerate() {
            if y.is_nan() {
                targets.push(0.0);
                mask.push(0.0);
            } else {
                let y = match scaler {
                    Some(s) => (y - s.means[task]) / s.stds[task],
                    None => y,
                };
                targets.push(y);
                mask.push(1.0);
            }
        }
    }
    (targets, mask)
}

fn graphs_of<'a>(dataset: &'a MoleculeDataset, molecules: &[usize]) -> Result<Vec<&'a MolGraph>> {
    if molecules.is_empty() {
        return Err(DataError::EmptyBatch("no molecules"));
    }
    if !dataset.has_graphs() {
        return Err(DataError::FeaturesNotLoaded {
            needed: "molecule graphs",
        });
    }
    molecules
        .iter()
        .map(|&m| {
            dataset
                .graphs
                .get(m)
                .ok_or(DataError::SplitIndexOutOfRange {
                    part: "batch",
                    index: m,
                    len: dataset.len(),
                })
        })
        .collect()
}

/// Feature widths: from the dataset's feature set, else from the graphs
/// (a batch without bonds still gets the right bond width when the set is known).
fn feature_dims(dataset: &MoleculeDataset, graphs: &[&MolGraph]) -> (usize, usize) {
    if let Some(fs) = dataset.feature_set {
        return (fs.atom_dim(), fs.bond_dim());
    }
    let atom_dim = graphs
        .iter()
        .find(|g| g.n_atoms > 0)
        .map_or(0, |g| g.atom_features.len() / g.n_atoms);
    let bond_dim = graphs
        .iter()
        .find(|g| !g.bonds.is_empty())
        .map_or(0, |g| g.bond_features.len() / g.bonds.len());
    (atom_dim, bond_dim)
}

/// A dense minibatch padded to its own largest molecule (L atoms), for
/// CoMPT-style models. All arrays are row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseBatch {
    /// Dataset indices of the molecules, in batch order.
    pub molecules: Vec<usize>,
    /// Padded atom count L (largest molecule in this batch).
    pub max_atoms: usize,
    /// Atom feature width.
    pub atom_dim: usize,
    /// Bond (pair) feature width.
    pub bond_dim: usize,
    /// Number of tasks T.
    pub n_tasks: usize,
    /// B × L × atom_dim; zero rows for padding.
    pub node_features: Vec<f32>,
    /// B × L × L × bond_dim; symmetric, zero for non-bonded pairs and padding.
    pub pair_features: Vec<f32>,
    /// B × L × L topological distances; [`DISCONNECTED_DISTANCE`] wherever
    /// either atom is padding.
    pub distances: Vec<f32>,
    /// B × L, 1 for real atoms, 0 for padding.
    pub atom_mask: Vec<f32>,
    /// B × L, atom index + 1 for real atoms, 0 for padding.
    pub positions: Vec<i64>,
    /// B × T targets (standardised if a scaler was given); 0 where missing.
    pub targets: Vec<f32>,
    /// B × T, 1 where a label is present.
    pub target_mask: Vec<f32>,
}

impl DenseBatch {
    /// Assembles the molecules `molecules` of a featurized dataset. Needs
    /// distance matrices (the CoMPT feature set).
    pub fn assemble(
        dataset: &MoleculeDataset,
        molecules: &[usize],
        scaler: Option<&TargetScaler>,
    ) -> Result<Self> {
        let graphs = graphs_of(dataset, molecules)?;
        let (atom_dim, bond_dim) = feature_dims(dataset, &graphs);
        let b = graphs.len();
        let l = graphs.iter().map(|g| g.n_atoms).max().unwrap_or(0);
        let mut node_features = vec![0f32; b * l * atom_dim];
        let mut pair_features = vec![0f32; b * l * l * bond_dim];
        let mut distances = vec![DISCONNECTED_DISTANCE; b * l * l];
        let mut atom_mask = vec![0f32; b * l];
        let mut positions = vec![0i64; b * l];
        for (mi, g) in graphs.iter().enumerate() {
            let n = g.n_atoms;
            let d = g.distances.as_ref().ok_or(DataError::FeaturesNotLoaded {
                needed: "distance matrices (load with the CoMPT feature set)",
            })?;
            node_features[mi * l * atom_dim..][..n * atom_dim]
                .copy_from_slice(&g.atom_features[..n * atom_dim]);
            for i in 0..n {
                atom_mask[mi * l + i] = 1.0;
                positions[mi * l + i] = i as i64 + 1;
                distances[(mi * l + i) * l..][..n].copy_from_slice(&d[i * n..(i + 1) * n]);
            }
            for (k, &[a, c]) in g.bonds.iter().enumerate() {
                let (a, c) = (a as usize, c as usize);
                let feat = &g.bond_features[k * bond_dim..(k + 1) * bond_dim];
                pair_features[((mi * l + a) * l + c) * bond_dim..][..bond_dim]
                    .copy_from_slice(feat);
                pair_features[((mi * l + c) * l + a) * bond_dim..][..bond_dim]
                    .copy_from_slice(feat);
            }
        }
        let (targets, target_mask) = gather_targets(dataset, molecules, scaler);
        Ok(DenseBatch {
            molecules: molecules.to_vec(),
            max_atoms: l,
            atom_dim,
            bond_dim,
            n_tasks: dataset.n_tasks,
            node_features,
            pair_features,
            distances,
            atom_mask,
            positions,
            targets,
            target_mask,
        })
    }

    /// Number of molecules B.
    pub fn len(&self) -> usize {
        self.molecules.len()
    }

    /// Whether the batch has no molecules (never true for an assembled batch).
    pub fn is_empty(&self) -> bool {
        self.molecules.is_empty()
    }
}

/// A packed minibatch without padding, for message-passing models: all
/// atoms of all molecules stacked, and every chemical bond as two directed
/// bonds. Undirected bond k of a molecule gives directed bonds 2k
/// (begin → end) and 2k+1 (end → begin), offset by the directed bonds of
/// the molecules before it; indices are global within the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBatch {
    /// Dataset indices of the molecules, in batch order.
    pub molecules: Vec<usize>,
    /// Atom feature width.
    pub atom_dim: usize,
    /// Bond feature width.
    pub bond_dim: usize,
    /// Number of tasks T.
    pub n_tasks: usize,
    /// N_atoms × atom_dim.
    pub atom_features: Vec<f32>,
    /// N_dirbonds × bond_dim (both directions carry the bond's features).
    pub bond_features: Vec<f32>,
    /// Source atom of each directed bond.
    pub bond_source: Vec<i64>,
    /// Target atom of each directed bond.
    pub bond_target: Vec<i64>,
    /// The opposite directed bond of each directed bond.
    pub bond_reverse: Vec<i64>,
    /// Molecule (batch position) of each atom.
    pub atom_molecule: Vec<i64>,
    /// Atoms per molecule.
    pub atom_counts: Vec<i64>,
    /// Index of each molecule's first atom.
    pub atom_starts: Vec<i64>,
    /// Directed bonds per molecule.
    pub bond_counts: Vec<i64>,
    /// B × T targets (standardised if a scaler was given); 0 where missing.
    pub targets: Vec<f32>,
    /// B × T, 1 where a label is present.
    pub target_mask: Vec<f32>,
}

impl PackedBatch {
    /// Assembles the molecules `molecules` of a featurized dataset.
    pub fn assemble(
        dataset: &MoleculeDataset,
        molecules: &[usize],
        scaler: Option<&TargetScaler>,
    ) -> Result<Self> {
        let graphs = graphs_of(dataset, molecules)?;
        let (atom_dim, bond_dim) = feature_dims(dataset, &graphs);
        let n_atoms: usize = graphs.iter().map(|g| g.n_atoms).sum();
        let n_dir: usize = graphs.iter().map(|g| 2 * g.bonds.len()).sum();
        let mut atom_features = Vec::with_capacity(n_atoms * atom_dim);
        let mut bond_features = Vec::with_capacity(n_dir * bond_dim);
        let mut bond_source = Vec::with_capacity(n_dir);
        let mut bond_target = Vec::with_capacity(n_dir);
        let mut bond_reverse = Vec::with_capacity(n_dir);
        let mut atom_molecule = Vec::with_capacity(n_atoms);
        let mut atom_counts = Vec::with_capacity(graphs.len());
        let mut atom_starts = Vec::with_capacity(graphs.len());
        let mut bond_counts = Vec::with_capacity(graphs.len());
        let (mut atom_off, mut bond_off) = (0i64, 0i64);
        for (mi, g) in graphs.iter().enumerate() {
            atom_features.extend_from_slice(&g.atom_features[..g.n_atoms * atom_dim]);
            atom_molecule.extend(std::iter::repeat_n(mi as i64, g.n_atoms));
            for (k, &[a, c]) in g.bonds.iter().enumerate() {
                let feat = &g.bond_features[k * bond_dim..(k + 1) * bond_dim];
                let (a, c) = (atom_off + a as i64, atom_off + c as i64);
                let fwd = bond_off + 2 * k as i64;
                bond_features.extend_from_slice(feat);
                bond_features.extend_from_slice(feat);
                bond_source.extend([a, c]);
                bond_target.extend([c, a]);
                bond_reverse.extend([fwd + 1, fwd]);
            }
            atom_counts.push(g.n_atoms as i64);
            atom_starts.push(atom_off);
            bond_counts.push(2 * g.bonds.len() as i64);
            atom_off += g.n_atoms as i64;
            bond_off += 2 * g.bonds.len() as i64;
        }
        let (targets, target_mask) = gather_targets(dataset, molecules, scaler);
        Ok(PackedBatch {
            molecules: molecules.to_vec(),
            atom_dim,
            bond_dim,
            n_tasks: dataset.n_tasks,
            atom_features,
            bond_features,
            bond_source,
            bond_target,
            bond_reverse,
            atom_molecule,
            atom_counts,
            atom_starts,
            bond_counts,
            targets,
            target_mask,
        })
    }

    /// Number of molecules B.
    pub fn len(&self) -> usize {
        self.molecules.len()
    }

    /// Whether the batch has no molecules (never true for an assembled batch).
    pub fn is_empty(&self) -> bool {
        self.molecules.is_empty()
    }

    /// Total atoms in the batch.
    pub fn n_atoms(&self) -> usize {
        self.atom_molecule.len()
    }

    /// Total directed bonds in the batch.
    pub fn n_directed_bonds(&self) -> usize {
        self.bond_source.len()
    }
}

/// A batch layout that can be assembled from dataset indices.
pub trait BatchLayout: Sized {
    /// Assembles the batch of `molecules`.
    fn assemble(
        dataset: &MoleculeDataset,
        molecules: &[usize],
        scaler: Option<&TargetScaler>,
    ) -> Result<Self>;
}

impl BatchLayout for DenseBatch {
    fn assemble(d: &MoleculeDataset, m: &[usize], s: Option<&TargetScaler>) -> Result<Self> {
        DenseBatch::assemble(d, m, s)
    }
}

impl BatchLayout for PackedBatch {
    fn assemble(d: &MoleculeDataset, m: &[usize], s: Option<&TargetScaler>) -> Result<Self> {
        PackedBatch::assemble(d, m, s)
    }
}

/// Assembles batches lazily, one per `next()`, over a fixed batch order.
pub struct BatchIter<'a, B> {
    dataset: &'a MoleculeDataset,
    scaler: Option<&'a TargetScaler>,
    order: std::vec::IntoIter<Vec<usize>>,
    _layout: std::marker::PhantomData<B>,
}

impl<'a, B: BatchLayout> BatchIter<'a, B> {
    /// Iterates over `order` (e.g. from [`shuffled_batches`]).
    pub fn new(
        dataset: &'a MoleculeDataset,
        order: Vec<Vec<usize>>,
        scaler: Option<&'a TargetScaler>,
    ) -> Self {
        BatchIter {
            dataset,
            scaler,
            order: order.into_iter(),
            _layout: std::marker::PhantomData,
        }
    }
}

impl<B: BatchLayout> Iterator for BatchIter<'_, B> {
    type Item = Result<B>;
    fn next(&mut self) -> Option<Result<B>> {
        let molecules = self.order.next()?;
        Some(B::assemble(self.dataset, &molecules, self.scaler))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
}

/// Shuffled training batches of `indices` for one epoch (seed, epoch fix the order).
pub fn batches<'a, B: BatchLayout>(
    dataset: &'a MoleculeDataset,
    indices: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: u64,
    scaler: Option<&'a TargetScaler>,
) -> BatchIter<'a, B> {
    BatchIter::new(
        dataset,
        shuffled_batches(indices, batch_size, seed, epoch),
        scaler,
    )
}
