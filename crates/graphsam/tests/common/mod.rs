//! Fixtures shared by the integration tests that train on a tiny dataset.

use graphsam::data::{DatasetSpec, LoadOptions, MoleculeDataset, TaskType};
use graphsam::features::FeatureSet;

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

/// [`SMILES`] as a one-task classification set (label: contains nitrogen),
/// featurized for `features`.
pub fn tiny_classification(features: FeatureSet) -> MoleculeDataset {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("smiles,y\n");
    for s in SMILES {
        csv.push_str(&format!(
            "{s},{}\n",
            (s.contains('N') || s.contains('n')) as u8
        ));
    }
    let path = dir.path().join("tiny.csv");
    std::fs::write(&path, csv).unwrap();
    let spec = DatasetSpec::custom(
        "tiny.csv",
        "smiles",
        vec!["y".into()],
        TaskType::Classification,
    );
    MoleculeDataset::load(&path, &spec, &LoadOptions::for_features(features)).unwrap()
}
