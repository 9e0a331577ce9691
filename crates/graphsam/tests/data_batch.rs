//! Batching and target scaling: shapes, padding per batch, symmetry,
//! directed-bond indexing, seeded order, and standardisation.

use approx::assert_abs_diff_eq;
use graphsam::data::{
    BatchIter, DataError, DatasetSpec, DenseBatch, LoadOptions, MoleculeDataset, PackedBatch,
    TargetScaler, TaskType, batches, sequential_batches, shuffled_batches,
};
use graphsam::features::{DISCONNECTED_DISTANCE, FeatureSet};

/// Ethanol (3 atoms, bonds 0-1, 1-2), "C.C" (two fragments, no bonds),
/// benzene (6 atoms, 6 bonds), water (1 atom). Two tasks with gaps.
fn dataset(features: Option<FeatureSet>) -> MoleculeDataset {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.csv");
    std::fs::write(
        &p,
        "smiles,a,b\nCCO,1.0,10\nC.C,3.0,\nc1ccccc1,,30\nO,5.0,50\n",
    )
    .unwrap();
    let spec = DatasetSpec::custom(
        "t.csv",
        "smiles",
        vec!["a".into(), "b".into()],
        TaskType::Regression,
    );
    let opts = LoadOptions {
        features,
        atom_limit: None,
        scaffolds: false,
    };
    MoleculeDataset::load(&p, &spec, &opts).unwrap()
}

#[test]
fn dense_batch_pads_to_its_own_largest_molecule() {
    let ds = dataset(Some(FeatureSet::Compt));
    let (fa, fb) = (FeatureSet::Compt.atom_dim(), FeatureSet::Compt.bond_dim());
    assert_eq!((fa, fb), (115, 13));
    let b = DenseBatch::assemble(&ds, &[0, 1], None).unwrap();
    let l = 3;
    assert_eq!(b.max_atoms, l, "padded to ethanol, not to benzene");
    assert_eq!(b.node_features.len(), 2 * l * fa);
    assert_eq!(b.pair_features.len(), 2 * l * l * fb);
    assert_eq!(b.distances.len(), 2 * l * l);
    assert_eq!(b.atom_mask, vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    assert_eq!(b.positions, vec![1, 2, 3, 1, 2, 0]);
    // Node features are the graph's rows; the padded row is zero.
    assert_eq!(&b.node_features[..3 * fa], &ds.graphs[0].atom_features[..]);
    assert_eq!(
        &b.node_features[(l + 2) * fa..(l + 3) * fa],
        &vec![0.0; fa][..]
    );
    let pair = |m: usize, i: usize, j: usize| &b.pair_features[((m * l + i) * l + j) * fb..][..fb];
    let g = &ds.graphs[0];
    for (k, &[u, v]) in g.bonds.iter().enumerate() {
        let f = &g.bond_features[k * fb..(k + 1) * fb];
        assert_eq!(pair(0, u as usize, v as usize), f);
        assert_eq!(pair(0, v as usize, u as usize), f);
    }
    // Non-bonded pair 0-2 of ethanol, all pairs of "C.C" and padding: zero.
    assert!(pair(0, 0, 2).iter().all(|&x| x == 0.0));
    for i in 0..l {
        for j in 0..l {
            assert!(pair(1, i, j).iter().all(|&x| x == 0.0));
        }
    }
    // Distances: ethanol's path lengths, fragments apart, padding far away.
    let d = |m: usize, i: usize, j: usize| b.distances[(m * l + i) * l + j];
    assert_eq!(
        [d(0, 0, 0), d(0, 0, 1), d(0, 0, 2), d(0, 2, 0)],
        [0.0, 1.0, 2.0, 2.0]
    );
    assert_eq!(d(1, 0, 1), DISCONNECTED_DISTANCE);
    assert_eq!(d(1, 0, 2), DISCONNECTED_DISTANCE);
    assert_eq!(d(1, 2, 2), DISCONNECTED_DISTANCE);
    // Targets with masks, unscaled.
    assert_eq!(b.targets, vec![1.0, 10.0, 3.0, 0.0]);
    assert_eq!(b.target_mask, vec![1.0, 1.0, 1.0, 0.0]);

    let big = DenseBatch::assemble(&ds, &[3, 2], None).unwrap();
    assert_eq!(big.max_atoms, 6);
    assert_eq!(big.positions[..6], [1, 0, 0, 0, 0, 0]);
    // Benzene's pair features are symmetric.
    let l = 6;
    for i in 0..l {
        for j in 0..l {
            let a = &big.pair_features[((l + i) * l + j) * fb..][..fb];
            let c = &big.pair_features[((l + j) * l + i) * fb..][..fb];
            assert_eq!(a, c);
        }
    }
}

#[test]
fn packed_batch_indexes_directed_bonds_without_padding() {
    let ds = dataset(Some(FeatureSet::Grover));
    let (fa, fb) = (FeatureSet::Grover.atom_dim(), FeatureSet::Grover.bond_dim());
    let b = PackedBatch::assemble(&ds, &[2, 0, 3], None).unwrap();
    // Benzene 6 atoms/6 bonds, ethanol 3/2, water 1/0.
    assert_eq!(b.n_atoms(), 10);
    assert_eq!(b.n_directed_bonds(), 16);
    assert_eq!(b.atom_features.len(), 10 * fa);
    assert_eq!(b.bond_features.len(), 16 * fb);
    assert_eq!(b.atom_counts, vec![6, 3, 1]);
    assert_eq!(b.atom_starts, vec![0, 6, 9]);
    assert_eq!(b.bond_counts, vec![12, 4, 0]);
    assert_eq!(b.atom_molecule, vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 2]);
    for e in 0..16 {
        let r = b.bond_reverse[e] as usize;
        assert_eq!(b.bond_reverse[r] as usize, e);
        assert_eq!(b.bond_source[e], b.bond_target[r]);
        assert_eq!(b.bond_target[e], b.bond_source[r]);
        assert_eq!(
            b.bond_features[e * fb..][..fb],
            b.bond_features[r * fb..][..fb]
        );
        // A bond stays inside its molecule.
        assert_eq!(
            b.atom_molecule[b.bond_source[e] as usize],
            b.atom_molecule[b.bond_target[e] as usize]
        );
    }
    // Ethanol's undirected bond k: directed 12 + 2k is begin -> end.
    let eth = &ds.graphs[0];
    for (k, &[u, v]) in eth.bonds.iter().enumerate() {
        assert_eq!(b.bond_source[12 + 2 * k], 6 + u as i64);
        assert_eq!(b.bond_target[12 + 2 * k], 6 + v as i64);
        assert_eq!(b.bond_reverse[12 + 2 * k], 13 + 2 * k as i64);
        assert_eq!(
            &b.bond_features[(12 + 2 * k) * fb..][..fb],
            &eth.bond_features[k * fb..][..fb]
        );
    }
    assert_eq!(&b.atom_features[6 * fa..9 * fa], &eth.atom_features[..]);
    assert_eq!(b.targets, vec![0.0, 30.0, 1.0, 10.0, 5.0, 50.0]);
    assert_eq!(b.target_mask, vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
}

#[test]
fn batches_without_features_or_molecules_are_errors() {
    let ds = dataset(None);
    let err = DenseBatch::assemble(&ds, &[0], None).unwrap_err();
    assert!(matches!(err, DataError::FeaturesNotLoaded { .. }), "{err}");
    let err = PackedBatch::assemble(&ds, &[0], None).unwrap_err();
    assert!(matches!(err, DataError::FeaturesNotLoaded { .. }), "{err}");
    let grover = dataset(Some(FeatureSet::Grover));
    let err = DenseBatch::assemble(&grover, &[0], None).unwrap_err();
    assert!(
        matches!(err, DataError::FeaturesNotLoaded { needed } if needed.contains("distance")),
        "{err}"
    );
    let err = PackedBatch::assemble(&grover, &[], None).unwrap_err();
    assert!(matches!(err, DataError::EmptyBatch(_)), "{err}");
    let err = PackedBatch::assemble(&grover, &[9], None).unwrap_err();
    assert!(
        matches!(err, DataError::SplitIndexOutOfRange { index: 9, .. }),
        "{err}"
    );
}

#[test]
fn shuffled_batches_are_seeded_per_epoch_and_cover_every_index() {
    let idx: Vec<usize> = (100..150).collect();
    let a = shuffled_batches(&idx, 16, 7, 0);
    assert_eq!(
        a.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![16, 16, 16, 2]
    );
    let mut flat: Vec<usize> = a.concat();
    flat.sort_unstable();
    assert_eq!(flat, idx);
    assert_eq!(a, shuffled_batches(&idx, 16, 7, 0));
    assert_ne!(a, shuffled_batches(&idx, 16, 7, 1), "epochs differ");
    assert_ne!(a, shuffled_batches(&idx, 16, 8, 0), "seeds differ");
    assert_ne!(a.concat(), idx, "actually shuffled");
    assert_eq!(sequential_batches(&idx, 20).concat(), idx);
}

#[test]
fn batch_iter_yields_scaled_targets_in_order() {
    let ds = dataset(Some(FeatureSet::Chemprop));
    let scaler = TargetScaler::fit(&ds, &[0, 1, 2, 3]);
    let it: BatchIter<PackedBatch> = batches(&ds, &[0, 1, 2, 3], 3, 1, 0, Some(&scaler));
    let got: Vec<PackedBatch> = it.collect::<Result<_, _>>().unwrap();
    assert_eq!(got.iter().map(|b| b.len()).sum::<usize>(), 4);
    let order = shuffled_batches(&[0, 1, 2, 3], 3, 1, 0);
    for (b, ids) in got.iter().zip(&order) {
        assert_eq!(&b.molecules, ids);
        for (row, &m) in ids.iter().enumerate() {
            for t in 0..2 {
                let y = ds.targets_of(m)[t];
                let want = if y.is_nan() {
                    0.0
                } else {
                    (y - scaler.means[t]) / scaler.stds[t]
                };
                assert_abs_diff_eq!(b.targets[row * 2 + t], want, epsilon = 1e-6);
            }
        }
    }
}

#[test]
fn scaler_uses_training_rows_and_ignores_missing() {
    let ds = dataset(None);
    // Task a over rows 0,1,3: 1, 3, 5 -> mean 3, population std sqrt(8/3).
    // Task b over rows 0,3 (row 1 missing): 10, 50 -> mean 30, std 20.
    let s = TargetScaler::fit(&ds, &[0, 1, 3]);
    assert_abs_diff_eq!(s.means[0], 3.0, epsilon = 1e-6);
    assert_abs_diff_eq!(s.stds[0], (8.0f32 / 3.0).sqrt(), epsilon = 1e-6);
    assert_eq!((s.means[1], s.stds[1]), (30.0, 20.0));
    let mut v = vec![5.0, 10.0, f32::NAN, 50.0];
    s.transform(&mut v);
    assert_abs_diff_eq!(v[0], 2.0 / (8.0f32 / 3.0).sqrt(), epsilon = 1e-6);
    assert_eq!(v[1], -1.0);
    assert!(v[2].is_nan());
    s.inverse_transform(&mut v);
    assert_abs_diff_eq!(v[0], 5.0, epsilon = 1e-5);
    assert_abs_diff_eq!(v[3], 50.0, epsilon = 1e-5);
    // A constant task and an unlabelled task keep std 1 (no division by 0).
    let one = TargetScaler::fit(&ds, &[2]);
    assert_eq!((one.means[1], one.stds[1]), (30.0, 1.0));
    assert_eq!((one.means[0], one.stds[0]), (0.0, 1.0));
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<TargetScaler>(&json).unwrap(), s);
}
