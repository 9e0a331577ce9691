//! Timings, not assertions of speed: run with
//! `cargo test -p graphsam --release --test data_bench -- --ignored --nocapture`
//! to print load + featurize times of the paper datasets and the cost of
//! assembling a batch. Ignored by default so CI stays fast.

use std::path::PathBuf;
use std::time::Instant;

use graphsam::data::{
    DatasetResolver, DenseBatch, LoadOptions, MoleculeDataset, PackedBatch, Registry, SplitKind,
    SplitSizes, make_split, shuffled_batches,
};
use graphsam::features::FeatureSet;

fn resolver() -> DatasetResolver {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/moleculenet");
    DatasetResolver {
        data_dir: Some(dir),
        ..DatasetResolver::default()
    }
}

#[test]
#[ignore = "timing report; run explicitly"]
fn report_load_and_featurize_times() {
    let r = resolver();
    for spec in Registry::moleculenet().specs() {
        let t0 = Instant::now();
        let ds = MoleculeDataset::resolve_and_load(
            &r,
            spec,
            None,
            &LoadOptions::for_features(FeatureSet::Compt),
        )
        .unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let random = make_split(&ds, &SplitKind::Random, SplitSizes::default(), 0).unwrap();
        let scaffold =
            make_split(&ds, &SplitKind::ScaffoldBalanced, SplitSizes::default(), 0).unwrap();
        println!(
            "{:14} valid {:5} skipped {:3} random {:?} scaffold {:?} load+featurize(CoMPT) {:.2}s",
            spec.name,
            ds.len(),
            ds.skipped.len(),
            random.sizes(),
            scaffold.sizes(),
            secs
        );
        for s in &ds.skipped {
            println!("    line {:5}: {}", s.line, s.reason);
        }
    }
}

#[test]
#[ignore = "timing report; run explicitly"]
fn report_batch_assembly_cost_on_bbbp() {
    let r = resolver();
    let reg = Registry::moleculenet();
    let spec = reg.get("bbbp").unwrap();
    let compt = MoleculeDataset::resolve_and_load(
        &r,
        spec,
        None,
        &LoadOptions::for_features(FeatureSet::Compt),
    )
    .unwrap();
    let all: Vec<usize> = (0..compt.len()).collect();
    let t0 = Instant::now();
    let mut n = 0;
    let mut max_l = 0;
    for epoch in 0..3 {
        for b in shuffled_batches(&all, 32, 0, epoch) {
            let batch = DenseBatch::assemble(&compt, &b, None).unwrap();
            max_l = max_l.max(batch.max_atoms);
            n += 1;
        }
    }
    let dense_ms = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
    let grover = MoleculeDataset::resolve_and_load(
        &r,
        spec,
        None,
        &LoadOptions::for_features(FeatureSet::Grover),
    )
    .unwrap();
    let all: Vec<usize> = (0..grover.len()).collect();
    let t0 = Instant::now();
    let mut m = 0;
    for epoch in 0..3 {
        for b in shuffled_batches(&all, 32, 0, epoch) {
            PackedBatch::assemble(&grover, &b, None).unwrap();
            m += 1;
        }
    }
    let packed_ms = t0.elapsed().as_secs_f64() * 1e3 / m as f64;
    println!(
        "BBBP batch 32: dense (CoMPT) {dense_ms:.3} ms/batch (largest L {max_l}), packed (GROVER) {packed_ms:.3} ms/batch"
    );
}
