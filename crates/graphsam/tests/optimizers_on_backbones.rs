//! Every optimizer trains every backbone: a few epochs on a tiny fixture
//! lower the training loss, for CoMPT, GROVER and D-MPNN alike.

use graphsam::data::{Metric, MoleculeDataset, Split};
use graphsam::device::ComputeBackend;
use graphsam::model::PropertyModel;
use graphsam::optim::{NoamLrConfig, OPTIMIZER_NAMES};
use graphsam::train::{SilentObserver, TrainSettings, fit};

mod common;

use common::SMILES;

fn first_and_last_loss<M: PropertyModel>(
    model: M,
    data: &MoleculeDataset,
    optimizer: &str,
) -> (f64, f64) {
    let all: Vec<usize> = (0..data.len()).collect();
    let split = Split {
        train: all.clone(),
        valid: all.clone(),
        test: all,
    };
    let settings = TrainSettings {
        epochs: 20,
        patience: 0,
        batch_size: 4,
        seed: 1,
        optimizer: optimizer.parse().unwrap(),
        // A constant rate keeps the comparison about the optimizers, not the schedule.
        schedule: NoamLrConfig {
            init_lr: 3e-3,
            max_lr: 3e-3,
            final_lr: 3e-3,
            warmup_epochs: 0.0,
        },
        metric: Metric::RocAuc,
        track_similarity: None,
    };
    let device = ComputeBackend::default_cpu().autodiff_device();
    let outcome = fit(
        model,
        data,
        &split,
        None,
        &settings,
        &device,
        None,
        &mut SilentObserver,
    )
    .unwrap();
    let h = &outcome.history;
    // Like with like: L(w) where every step has it, else L(w+ε) (GraphSAM
    // evaluates L(w) at its anchor only).
    let loss = |r: &graphsam::train::record::EpochRecord| {
        if r.clean_loss_steps >= r.perturbed_loss_steps {
            r.clean_loss.unwrap()
        } else {
            r.perturbed_loss.unwrap()
        }
    };
    (loss(&h[0]), loss(&h[h.len() - 1]))
}

#[test]
fn every_optimizer_lowers_the_loss_of_every_backbone() {
    let plain = ComputeBackend::default_cpu().device();
    for spec in &common::tiny_backbones() {
        let data = common::tiny_classification(spec.feature_set());
        assert_eq!(data.len(), SMILES.len());
        for optimizer in OPTIMIZER_NAMES {
            let (first, last) = graphsam::with_model!(spec, &plain, 7, |model| {
                first_and_last_loss(model, &data, optimizer)
            });
            eprintln!("{} {optimizer}: {first:.4} -> {last:.4}", spec.name());
            assert!(
                last.is_finite() && last < 0.97 * first,
                "{} with {optimizer}: loss {first:.4} -> {last:.4}",
                spec.name()
            );
        }
    }
}
