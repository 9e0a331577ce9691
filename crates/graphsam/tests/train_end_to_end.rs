//! End-to-end training on a tiny fixture: run record, pass counts, resume
//! after an interruption (bit-identical to an uninterrupted run), and
//! predictions reloaded from the saved model.

use std::path::Path;

use graphsam::data::{DatasetSpec, LoadOptions, Metric, MoleculeDataset, SplitSizes, TaskType};
use graphsam::features::FeatureSet;
use graphsam::model::ModelSpec;
use graphsam::model::compt::ComptConfig;
use graphsam::model::dmpnn::DmpnnConfig;
use graphsam::train::record::{files, read_epoch_history, read_json};
use graphsam::train::{ModelCard, RunConfig, RunSummary, SilentObserver, TrainObserver, run_seed};

mod common;

/// The shared molecules and four more: a fused ring, a triatomic, sulfur
/// and an ester.
fn molecules() -> Vec<&'static str> {
    let mut all = common::MOLECULES.to_vec();
    all.extend(["c1ccc2ccccc2c1", "O=C=O", "c1ccsc1", "CC(=O)OC"]);
    all
}

/// Writes a fixture CSV: label 1 for molecules with nitrogen, plus one
/// invalid row and one missing label.
fn fixture(dir: &Path, task: TaskType) -> MoleculeDataset {
    let mut csv = String::from("smiles,y\n");
    for (i, s) in molecules().iter().enumerate() {
        let y = match task {
            TaskType::Classification => (s.contains('N') || s.contains('n')) as u8 as f32,
            TaskType::Regression => s.len() as f32 * 0.3 - 1.0,
        };
        if i == 5 {
            csv.push_str(&format!("{s},\n"));
        } else {
            csv.push_str(&format!("{s},{y}\n"));
        }
    }
    csv.push_str("C1CC,1\n");
    let path = dir.join("fixture.csv");
    std::fs::write(&path, csv).unwrap();
    let spec = DatasetSpec::custom("fixture.csv", "smiles", vec!["y".into()], task);
    let features = match task {
        TaskType::Classification => FeatureSet::Compt,
        TaskType::Regression => FeatureSet::Chemprop,
    };
    MoleculeDataset::load(&path, &spec, &LoadOptions::for_features(features)).unwrap()
}

/// The shared tiny run with this file's seed and `epochs`.
fn config(model: ModelSpec, optimizer: &str, task: TaskType, epochs: usize) -> RunConfig {
    let mut config = common::run_config(model, optimizer, task, Path::new("fixture.csv"));
    config.train.seed = 3;
    config.train.epochs = epochs;
    config
}

fn device() -> burn::tensor::Device {
    common::autodiff_device()
}

#[test]
fn compt_graphsam_run_writes_a_complete_record() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = fixture(dir.path(), TaskType::Classification);
    assert_eq!(dataset.len(), 24);
    assert_eq!(
        dataset.skipped.len(),
        1,
        "the invalid SMILES row is skipped"
    );
    let run = dir.path().join("run");
    let cfg = config(
        ModelSpec::Compt(ComptConfig::tiny(1)),
        "graphsam",
        TaskType::Classification,
        3,
    );
    let summary = run_seed(&dataset, &cfg, &device(), &run, &mut SilentObserver).unwrap();

    for f in [
        files::CONFIG,
        files::SPLIT,
        files::METRICS_JSONL,
        files::METRICS_CSV,
        files::CURVE_SVG,
        files::BEST_MODEL,
        files::MODEL_CARD,
        files::SUMMARY,
        files::CHECKPOINT,
    ] {
        assert!(run.join(f).is_file(), "{f} missing from the run record");
    }
    assert_eq!(summary.metric, Metric::RocAuc);
    assert_eq!(summary.split_sizes.iter().sum::<usize>(), 24);
    let history = read_epoch_history(&run).unwrap();
    assert_eq!(history.len(), 3);
    // 15 training molecules in batches of 4: S = 4 steps, GraphSAM uses S + 1 passes.
    let steps = summary.split_sizes[0].div_ceil(4) as u64;
    for r in &history {
        assert_eq!(r.forward_passes, steps + 1, "epoch {}", r.epoch);
        // L(w) only at the anchor, L(w+ε) at every step: recorded apart.
        assert_eq!(
            (r.clean_loss_steps, r.perturbed_loss_steps),
            (1, steps),
            "epoch {}",
            r.epoch
        );
        assert!(r.clean_loss.unwrap().is_finite() && r.perturbed_loss.unwrap().is_finite());
    }
    // ρ follows StepLR with γ = 0.5: 0.05, 0.025, 0.0125.
    let rhos: Vec<f64> = history.iter().map(|r| r.rho).collect();
    assert_eq!(rhos, vec![0.05, 0.025, 0.0125]);
    let card: ModelCard = read_json(&run.join(files::MODEL_CARD)).unwrap();
    assert_eq!(card.task_names, vec!["y".to_string()]);

    // A finished run is not trained again: the summary is returned as stored.
    let again = run_seed(&dataset, &cfg, &device(), &run, &mut SilentObserver).unwrap();
    assert_eq!(again, summary);
    // A different configuration in the same folder is refused, nothing is overwritten.
    std::fs::remove_file(run.join(files::SUMMARY)).unwrap();
    let other = config(
        ModelSpec::Compt(ComptConfig::tiny(1)),
        "adam",
        TaskType::Classification,
        3,
    );
    let err = run_seed(&dataset, &other, &device(), &run, &mut SilentObserver).unwrap_err();
    assert!(err.to_string().contains("different configuration"), "{err}");
}

#[test]
fn a_fixed_split_seed_shares_the_split_while_weights_and_batches_follow_the_run_seed() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = fixture(dir.path(), TaskType::Regression);
    let spec = ModelSpec::Dmpnn(DmpnnConfig::tiny(1).with_atom_dim(133).with_bond_dim(14));
    let run = |seed: u64, split_seed: Option<u64>| {
        let mut cfg = config(spec.clone(), "adam", TaskType::Regression, 2);
        cfg.train.seed = seed;
        cfg.split_seed = split_seed;
        let out = dir.path().join(format!("seed-{seed}-split-{split_seed:?}"));
        let summary = run_seed(&dataset, &cfg, &device(), &out, &mut SilentObserver).unwrap();
        let split: graphsam::data::Split = read_json(&out.join(files::SPLIT)).unwrap();
        let weights = std::fs::read(out.join(files::BEST_MODEL)).unwrap();
        (summary, split, weights)
    };
    let (a, split_a, weights_a) = run(0, Some(7));
    let (b, split_b, weights_b) = run(1, Some(7));
    assert_eq!(split_a, split_b, "one split for both runs");
    assert_eq!((a.split_seed, b.split_seed), (Some(7), Some(7)));
    assert_ne!(
        weights_a, weights_b,
        "runs 0 and 1 start from different weights"
    );
    assert_ne!(a.test.value, b.test.value);
    // Without it, each run splits with its own seed (the default protocol).
    let (c, split_c, _) = run(0, None);
    let (_, split_d, _) = run(1, None);
    assert_ne!(split_c, split_d);
    assert_eq!(c.split_seed, None);
    // The fixed split is the one seed 7 draws.
    let (_, split_7, _) = run(7, None);
    assert_eq!(split_a, split_7);
}

/// Stops after a given number of epochs.
struct StopAfter(usize, usize);
impl TrainObserver for StopAfter {
    fn epoch_finished(&mut self, _: &graphsam::train::record::EpochRecord, _: Metric) {
        self.1 += 1;
    }
    fn should_stop(&mut self) -> bool {
        self.1 >= self.0
    }
}

#[test]
fn interrupted_run_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = fixture(dir.path(), TaskType::Regression);
    let spec = ModelSpec::Dmpnn(DmpnnConfig::tiny(1).with_atom_dim(133).with_bond_dim(14));
    for optimizer in ["graphsam", "sam"] {
        let cfg = config(spec.clone(), optimizer, TaskType::Regression, 4);
        let whole = dir.path().join(format!("whole-{optimizer}"));
        let expected: RunSummary =
            run_seed(&dataset, &cfg, &device(), &whole, &mut SilentObserver).unwrap();

        let parts = dir.path().join(format!("parts-{optimizer}"));
        let err = run_seed(&dataset, &cfg, &device(), &parts, &mut StopAfter(2, 0)).unwrap_err();
        assert!(
            err.to_string().contains("interrupted after 2 epochs"),
            "{err}"
        );
        assert!(
            !parts.join(files::SUMMARY).exists(),
            "an interrupted run has no summary"
        );
        let resumed = run_seed(&dataset, &cfg, &device(), &parts, &mut SilentObserver).unwrap();

        assert_eq!(
            resumed.test, expected.test,
            "{optimizer}: test metric after resume"
        );
        assert_eq!(resumed.best_epoch, expected.best_epoch);
        let (a, b) = (
            read_epoch_history(&whole).unwrap(),
            read_epoch_history(&parts).unwrap(),
        );
        assert_eq!(a.len(), 4);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.clean_loss, y.clean_loss, "{optimizer} epoch {}", x.epoch);
            assert_eq!(
                x.perturbed_loss, y.perturbed_loss,
                "{optimizer} epoch {}",
                x.epoch
            );
            assert_eq!(
                x.valid_metric, y.valid_metric,
                "{optimizer} epoch {}",
                x.epoch
            );
            assert_eq!(x.forward_passes, y.forward_passes);
        }
        assert_eq!(resumed.metric, Metric::Rmse);
        assert!(resumed.test.value.is_finite() && resumed.test.value > 0.0);
    }
}

/// Collects the trainer's warnings.
#[derive(Default)]
struct Warnings(Vec<String>);
impl TrainObserver for Warnings {
    fn warning(&mut self, message: &str) {
        self.0.push(message.to_string());
    }
}

#[test]
fn a_validation_split_with_one_class_is_reported_and_training_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = fixture(dir.path(), TaskType::Classification);
    let (negatives, rest): (Vec<usize>, Vec<usize>) =
        (0..dataset.len()).partition(|&i| dataset.targets_of(i)[0] == 0.0);
    let split = graphsam::data::Split {
        train: rest
            .iter()
            .copied()
            .chain(negatives[3..].iter().copied())
            .collect(),
        valid: negatives[..3].to_vec(),
        test: vec![],
    };
    let cfg = config(
        ModelSpec::Dmpnn(DmpnnConfig::tiny(1).with_atom_dim(115).with_bond_dim(13)),
        "adam",
        TaskType::Classification,
        2,
    );
    let model = DmpnnConfig::tiny(1)
        .with_atom_dim(115)
        .with_bond_dim(13)
        .init(&graphsam::device::ComputeBackend::default_cpu().device(), 0);
    let mut warnings = Warnings::default();
    let outcome = graphsam::train::fit(
        model,
        &dataset,
        &split,
        None,
        &cfg.train,
        &device(),
        None,
        &mut warnings,
    )
    .unwrap();
    assert_eq!(outcome.history.len(), 2, "both epochs ran");
    assert!(outcome.history.iter().all(|r| r.valid_metric.is_none()));
    assert_eq!(warnings.0.len(), 2, "{:?}", warnings.0);
    assert!(
        warnings.0[0].contains("validation split cannot be scored")
            && warnings.0[0].contains("roc-auc is undefined"),
        "{:?}",
        warnings.0
    );
}

#[test]
fn a_nan_prediction_is_an_error_not_a_missing_score() {
    use burn::module::{Module, ModuleMapper, Param};
    use burn::tensor::Tensor;
    /// Sets every weight to NaN, as a diverged run would leave them.
    struct Poison;
    impl ModuleMapper for Poison {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| t.mul_scalar(f32::NAN))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let dataset = fixture(dir.path(), TaskType::Classification);
    let cpu = graphsam::device::ComputeBackend::default_cpu().device();
    let model = DmpnnConfig::tiny(1)
        .with_atom_dim(115)
        .with_bond_dim(13)
        .init(&cpu, 0);
    let all: Vec<usize> = (0..dataset.len()).collect();
    graphsam::train::evaluate_split(&model, &dataset, &all, None, Metric::RocAuc, &cpu).unwrap();
    let poisoned = model.map(&mut Poison);
    let err =
        graphsam::train::evaluate_split(&poisoned, &dataset, &all, None, Metric::RocAuc, &cpu)
            .unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<graphsam::data::DataError>(),
            Some(graphsam::data::DataError::NonFinitePrediction { .. })
        ),
        "{err:#}"
    );
}

#[test]
fn a_test_split_that_cannot_be_scored_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = fixture(dir.path(), TaskType::Classification);
    let mut cfg = config(
        ModelSpec::Compt(ComptConfig::tiny(1)),
        "adam",
        TaskType::Classification,
        2,
    );
    // Two test molecules of 24: here both of one class, so no ROC-AUC.
    cfg.split_sizes = SplitSizes::new(0.9, 0.05, 0.05).unwrap();
    let run = dir.path().join("run");
    let err = run_seed(&dataset, &cfg, &device(), &run, &mut SilentObserver).unwrap_err();
    assert!(
        err.to_string()
            .contains("the test split of fixture (2 molecules) cannot be scored"),
        "{err}"
    );
    assert!(
        !run.join(files::METRICS_JSONL).exists(),
        "nothing was trained"
    );
}

#[test]
fn an_ensemble_predicts_the_mean_of_its_members_with_their_spread() {
    use graphsam::train::inference::{Ensemble, load_card, predict_with_card};
    let dir = tempfile::tempdir().unwrap();
    let dataset = fixture(dir.path(), TaskType::Regression);
    let spec = ModelSpec::Dmpnn(DmpnnConfig::tiny(1).with_atom_dim(133).with_bond_dim(14));
    // A training output folder with two seeds, as `train --seeds 2` writes it.
    let runs = dir.path().join("runs");
    for seed in 0..2 {
        let mut cfg = config(spec.clone(), "adam", TaskType::Regression, 1);
        cfg.train.seed = seed;
        run_seed(
            &dataset,
            &cfg,
            &device(),
            &runs.join(format!("seed-{seed}")),
            &mut SilentObserver,
        )
        .unwrap();
    }
    let cpu = graphsam::device::ComputeBackend::default_cpu().device();
    let all: Vec<usize> = (0..dataset.len()).collect();
    let ensemble = Ensemble::load(std::slice::from_ref(&runs)).unwrap();
    assert_eq!(ensemble.members.len(), 2, "both seed-* runs are members");
    let together = ensemble.predict(&dataset, &all, &cpu).unwrap();
    // Each member alone, through the single-model path.
    let alone: Vec<Vec<f64>> = (0..2)
        .map(|seed| {
            let run = runs.join(format!("seed-{seed}"));
            let card = load_card(&run).unwrap();
            predict_with_card(&run, &card, &dataset, &all, &cpu)
                .unwrap()
                .iter()
                .map(|&x| f64::from(x))
                .collect()
        })
        .collect();
    let std = together.std.as_ref().expect("two members have a spread");
    for k in 0..all.len() {
        let (a, b) = (alone[0][k], alone[1][k]);
        assert!(
            (together.mean[k] - (a + b) / 2.0).abs() < 1e-12,
            "molecule {k}"
        );
        // Sample standard deviation of two values: |a − b| / √2.
        assert!(
            (std[k] - (a - b).abs() / 2f64.sqrt()).abs() < 1e-12,
            "molecule {k}"
        );
    }
    assert!(
        std.iter().any(|&s| s > 0.0),
        "different seeds disagree somewhere"
    );
    // One member: its own predictions, no spread.
    let single = Ensemble::load(&[runs.join("seed-0")])
        .unwrap()
        .predict(&dataset, &all, &cpu)
        .unwrap();
    assert_eq!(single.mean, alone[0]);
    assert_eq!(single.std, None);

    // Members that predict other tasks are refused.
    let other = dir.path().join("other");
    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    let classification = fixture(&dir.path().join("c"), TaskType::Classification);
    let cfg = config(
        ModelSpec::Compt(ComptConfig::tiny(1)),
        "adam",
        TaskType::Classification,
        1,
    );
    run_seed(
        &classification,
        &cfg,
        &device(),
        &other,
        &mut SilentObserver,
    )
    .unwrap();
    let err = Ensemble::load(&[runs.join("seed-0"), other])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("do not predict the same tasks the same way"),
        "{err}"
    );

    // The command line writes the mean and a _std column per task.
    let csv = dir.path().join("new.csv");
    std::fs::write(&csv, "smiles\nCCO\nc1ccncc1\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_graphsam"))
        .args([
            "predict",
            "--model",
            runs.to_str().unwrap(),
            csv.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().next().unwrap(), "line,smiles,y,y_std");
    assert_eq!(stdout.lines().count(), 3);
}
