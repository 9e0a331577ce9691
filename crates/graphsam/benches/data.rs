//! The data stage's cost on BBBP: loading and featurizing the CSV for each
//! backbone's feature set, and assembling one training batch of 32 (dense
//! padded for CoMPT, packed for GROVER and D-MPNN).
//!
//! `cargo bench -p graphsam --bench data`. The CSVs come from
//! `GRAPHSAM_DATA_DIR`, else `../shared/data/moleculenet`; without them the
//! bench says so and measures nothing.

use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use graphsam::data::{
    BatchLayout, DatasetResolver, DenseBatch, LoadOptions, MoleculeDataset, PackedBatch, Registry,
    shuffled_batches,
};
use graphsam::features::FeatureSet;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GRAPHSAM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/moleculenet")
        });
    dir.join("BBBP.csv").is_file().then_some(dir)
}

fn load(dir: &Path, features: FeatureSet) -> MoleculeDataset {
    let resolver = DatasetResolver {
        data_dir: Some(dir.to_path_buf()),
        ..DatasetResolver::default()
    };
    let registry = Registry::moleculenet();
    let spec = registry.get("bbbp").expect("bbbp is registered");
    MoleculeDataset::resolve_and_load(&resolver, spec, None, &LoadOptions::for_features(features))
        .expect("BBBP loads")
}

/// Assembles every batch of one shuffled epoch in turn.
fn assemble<B: BatchLayout>(c: &mut Criterion, name: &str, data: &MoleculeDataset) {
    let all: Vec<usize> = (0..data.len()).collect();
    let batches = shuffled_batches(&all, 32, 0, 0);
    let mut group = c.benchmark_group("bbbp-batch-32");
    group.throughput(Throughput::Elements(32));
    let mut k = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            k = (k + 1) % batches.len();
            B::assemble(data, &batches[k], None).expect("batch assembles")
        })
    });
    group.finish();
}

fn bench_data(c: &mut Criterion) {
    let Some(dir) = data_dir() else {
        eprintln!(
            "data bench skipped: no BBBP.csv in GRAPHSAM_DATA_DIR or ../shared/data/moleculenet"
        );
        return;
    };
    let mut group = c.benchmark_group("bbbp-load");
    group.sample_size(10);
    let molecules = load(&dir, FeatureSet::Compt).len() as u64;
    group.throughput(Throughput::Elements(molecules));
    for features in [FeatureSet::Compt, FeatureSet::Chemprop, FeatureSet::Grover] {
        group.bench_function(format!("{features:?}"), |b| b.iter(|| load(&dir, features)));
    }
    group.finish();
    assemble::<DenseBatch>(c, "dense-compt", &load(&dir, FeatureSet::Compt));
    assemble::<PackedBatch>(c, "packed-grover", &load(&dir, FeatureSet::Grover));
    assemble::<PackedBatch>(c, "packed-dmpnn", &load(&dir, FeatureSet::Chemprop));
}

criterion_group!(benches, bench_data);
criterion_main!(benches);
