//! Fixtures shared by the integration tests that train on a tiny dataset.
// Each test binary compiles this module and uses only its own part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use graphsam::data::{DatasetSpec, LoadOptions, MoleculeDataset, SplitKind, SplitSizes, TaskType};
use graphsam::features::FeatureSet;
use graphsam::model::ModelSpec;
use graphsam::model::compt::ComptConfig;
use graphsam::model::dmpnn::DmpnnConfig;
use graphsam::model::grover::GroverConfig;
use graphsam::optim::{NoamLrConfig, OptimizerConfig};
use graphsam::train::{RunConfig, TrainSettings};

/// Sixteen small molecules: rings, heteroatoms and a salt of two fragments.
pub const SMILES: [&str; 16] = [
    "CCO",
    "CCN",
    "CCC",
    "c1ccccc1",
    "c1ccccc1O",
    "CC(=O)O",
    "CC(=O)N",
    "c1ccncc1",
    "OCCO",
    "NCCN",
    "CC(C)O",
    "CC(C)N",
    "C1CCCCC1",
    "C1CCNCC1",
    "CC#N",
    "[Na+].[Cl-]",
];

/// Twenty small neutral molecules, enough for a 12/4/4 split of a training
/// run or a compare cell.
pub const MOLECULES: [&str; 20] = [
    "CCO",
    "CCN",
    "CCC",
    "c1ccccc1",
    "c1ccccc1O",
    "CC(=O)O",
    "CC(=O)N",
    "c1ccncc1",
    "CCOC",
    "CCCl",
    "OCCO",
    "NCCN",
    "CC(C)O",
    "CC(C)N",
    "C1CCCCC1",
    "C1CCNCC1",
    "CC#N",
    "c1ccoc1",
    "CCCCO",
    "CCCCN",
];

/// A made-up property of a SMILES string: whether it holds nitrogen
/// (classification) or a linear function of its length (regression).
pub fn made_up_label(smiles: &str, task: TaskType) -> f32 {
    match task {
        TaskType::Classification => f32::from(u8::from(smiles.contains(['N', 'n']))),
        TaskType::Regression => smiles.len() as f32 * 0.3 - 1.0,
    }
}

/// [`SMILES`] as a one-task classification set (label: contains nitrogen),
/// featurized for `features`.
pub fn tiny_classification(features: FeatureSet) -> MoleculeDataset {
    let dir = tempfile::tempdir().unwrap();
    labelled(dir.path(), &SMILES, TaskType::Classification, features).0
}

/// [`MOLECULES`] with [`made_up_label`] as `dir/fixture.csv` (columns
/// `smiles,y`), loaded for `features`; returns the dataset and the file.
pub fn fixture(dir: &Path, task: TaskType, features: FeatureSet) -> (MoleculeDataset, PathBuf) {
    labelled(dir, &MOLECULES, task, features)
}

fn labelled(
    dir: &Path,
    molecules: &[&str],
    task: TaskType,
    features: FeatureSet,
) -> (MoleculeDataset, PathBuf) {
    let mut csv = String::from("smiles,y\n");
    for s in molecules {
        csv.push_str(&format!("{s},{}\n", made_up_label(s, task)));
    }
    let path = dir.join("fixture.csv");
    std::fs::write(&path, csv).unwrap();
    let spec = DatasetSpec::custom("fixture.csv", "smiles", vec!["y".into()], task);
    let dataset =
        MoleculeDataset::load(&path, &spec, &LoadOptions::for_features(features)).unwrap();
    (dataset, path)
}

/// A run on the fixture at `dataset_path`: random 60/20/20 split, batch 4,
/// three epochs without early stopping, seed 2, one warm-up epoch; tests
/// change the fields they vary.
pub fn run_config(
    model: ModelSpec,
    optimizer: &str,
    task: TaskType,
    dataset_path: &Path,
) -> RunConfig {
    RunConfig {
        dataset: "fixture".into(),
        dataset_path: dataset_path.display().to_string(),
        smiles_column: "smiles".into(),
        targets: vec!["y".into()],
        task_type: task,
        atom_limit: None,
        model,
        split: SplitKind::Random,
        split_sizes: SplitSizes::new(0.6, 0.2, 0.2).unwrap(),
        split_seed: None,
        train: TrainSettings {
            epochs: 3,
            patience: 0,
            batch_size: 4,
            seed: 2,
            optimizer: optimizer.parse::<OptimizerConfig>().unwrap(),
            schedule: NoamLrConfig {
                warmup_epochs: 1.0,
                ..NoamLrConfig::default()
            },
            metric: task.default_metric(),
            track_similarity: None,
        },
        backend: "flex".into(),
        graphsam_version: "test".into(),
    }
}

/// The CPU device with autodiff, on which tests train.
pub fn autodiff_device() -> burn::tensor::Device {
    graphsam::device::ComputeBackend::default_cpu().autodiff_device()
}

/// The three backbones at test size, one task, sized for their feature sets.
pub fn tiny_backbones() -> [ModelSpec; 3] {
    [
        ModelSpec::Compt(ComptConfig::tiny(1)),
        ModelSpec::Dmpnn(DmpnnConfig::tiny(1).with_atom_dim(133).with_bond_dim(14)),
        ModelSpec::Grover(GroverConfig::tiny(1).with_atom_dim(151).with_bond_dim(14)),
    ]
}

/// Runs the `graphsam` binary with `args` and waits for it.
pub fn graphsam(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_graphsam"))
        .args(args)
        .output()
        .unwrap()
}
