//! Seeing sharpness on tiny trained runs: `--track-similarity` records the
//! cosines without changing training, the split objective's gradient is the
//! gradient of its loss, `sharpness` and `landscape` measure a run folder of
//! each backbone and refuse the ones they cannot.

use std::path::{Path, PathBuf};
use std::process::Command;

use graphsam::data::{MoleculeDataset, TaskType};
use graphsam::features::FeatureSet;
use graphsam::model::ModelSpec;
use graphsam::model::compt::ComptConfig;
use graphsam::model::dmpnn::DmpnnConfig;
use graphsam::optim::ParamVector;
use graphsam::train::checkpoint::load_model;
use graphsam::train::record::{files, read_epoch_history, read_similarity};
use graphsam::train::sharpness::{
    LandscapeSettings, RunFolder, SharpnessSettings, SplitObjective, SplitPart, loss_landscape,
    measure_sharpness,
};
use graphsam::train::{RunConfig, SilentObserver, run_seed};

mod common;

use common::{autodiff_device as device, fixture};

/// The shared tiny run with `--track-similarity` set as given.
fn config(
    model: ModelSpec,
    optimizer: &str,
    task: TaskType,
    path: &Path,
    track: Option<u64>,
) -> RunConfig {
    let mut config = common::run_config(model, optimizer, task, path);
    config.train.track_similarity = track;
    config
}

fn dmpnn() -> ModelSpec {
    ModelSpec::Dmpnn(DmpnnConfig::tiny(1).with_atom_dim(133).with_bond_dim(14))
}

#[test]
fn tracking_similarity_records_cosines_and_leaves_training_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, path) = fixture(dir.path(), TaskType::Classification, FeatureSet::Compt);
    let spec = ModelSpec::Compt(ComptConfig::tiny(1));
    for optimizer in ["graphsam", "adam", "sam"] {
        let off = dir.path().join(format!("{optimizer}-off"));
        let on = dir.path().join(format!("{optimizer}-on"));
        let plain = run_seed(
            &dataset,
            &config(
                spec.clone(),
                optimizer,
                TaskType::Classification,
                &path,
                None,
            ),
            &device(),
            &off,
            &mut SilentObserver,
        )
        .unwrap();
        let tracked = run_seed(
            &dataset,
            &config(
                spec.clone(),
                optimizer,
                TaskType::Classification,
                &path,
                Some(1),
            ),
            &device(),
            &on,
            &mut SilentObserver,
        )
        .unwrap();
        // The extra pass changes nothing the optimizer does.
        assert_eq!(plain.test, tracked.test, "{optimizer}");
        assert_eq!(
            plain.passes_per_epoch, tracked.passes_per_epoch,
            "{optimizer}"
        );
        let (a, b) = (
            read_epoch_history(&off).unwrap(),
            read_epoch_history(&on).unwrap(),
        );
        let steps = plain.split_sizes[0].div_ceil(4) as u64;
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.clean_loss, y.clean_loss, "{optimizer} epoch {}", x.epoch);
            assert_eq!(x.perturbed_loss, y.perturbed_loss);
            assert_eq!(x.forward_passes, y.forward_passes);
            // Off: no extra pass at all; on with K = 1: one per step.
            assert_eq!(x.tracking_passes, 0);
            assert_eq!(y.tracking_passes, steps);
        }
        assert!(!off.join(files::SIMILARITY_CSV).exists());
        let header = std::fs::read_to_string(off.join(files::METRICS_CSV)).unwrap();
        assert!(!header.contains("tracking"), "{header}");
        assert!(on.join(files::SIMILARITY_SVG).is_file());

        let records = read_similarity(&on).unwrap();
        assert_eq!(records.len() as u64, 3 * steps, "{optimizer}");
        assert_eq!(
            records[0].cos_previous_update, None,
            "no update before step 0"
        );
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.step, i as u64);
            assert_eq!(r.epoch as u64, i as u64 / steps);
            assert!(r.gradient_norm > 0.0 && r.gradient_norm.is_finite());
            for c in [
                r.cos_perturbation,
                r.cos_previous_update,
                r.tensor_cos_perturbation,
                r.tensor_cos_previous_update,
            ]
            .into_iter()
            .flatten()
            {
                assert!((-1.0 - 1e-6..=1.0 + 1e-6).contains(&c), "{r:?}");
            }
            // The per-tensor medians exist exactly where the cosines do.
            assert_eq!(
                r.tensor_cos_perturbation.is_some(),
                r.cos_perturbation.is_some()
            );
            assert_eq!(
                r.tensor_cos_previous_update.is_some(),
                r.cos_previous_update.is_some()
            );
            if i > 0 {
                assert!(r.cos_previous_update.is_some(), "{optimizer} step {i}");
            }
            match optimizer {
                // Anchors at each epoch's first step; g_h exists after step 0.
                "graphsam" => {
                    assert_eq!(
                        r.exact_perturbation,
                        (i as u64).is_multiple_of(steps),
                        "{r:?}"
                    );
                    assert_eq!(r.cos_perturbation.is_some(), i > 0, "{r:?}");
                }
                "sam" => assert!(r.exact_perturbation && r.cos_perturbation.is_none()),
                _ => assert!(!r.exact_perturbation && r.cos_perturbation.is_none()),
            }
        }
    }
}

/// Trains a tiny regression run of `model` and returns (dataset, CSV path,
/// run folder).
fn trained_run(
    dir: &Path,
    optimizer: &str,
    model: ModelSpec,
) -> (MoleculeDataset, PathBuf, PathBuf) {
    let (dataset, path) = fixture(dir, TaskType::Regression, model.feature_set());
    let run = dir.join(format!("run-{optimizer}"));
    run_seed(
        &dataset,
        &config(model, optimizer, TaskType::Regression, &path, None),
        &device(),
        &run,
        &mut SilentObserver,
    )
    .unwrap();
    (dataset, path, run)
}

#[test]
fn the_split_objective_gradient_is_the_gradient_of_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, _, run) = trained_run(dir.path(), "adam", dmpnn());
    let folder = RunFolder::open(&run).unwrap();
    let indices = folder.indices(&dataset, SplitPart::Train).unwrap();
    let spec = match &folder.card.model {
        ModelSpec::Dmpnn(c) => c.clone(),
        other => panic!("{other:?}"),
    };
    let device = device();
    let model = load_model(spec.init(&device, 0), &run.join(files::BEST_MODEL)).unwrap();
    // Batches of 5 over 12 training molecules leave a last batch of 2: the
    // size weighting matters.
    let objective =
        SplitObjective::new(&dataset, &indices, folder.card.scaler.as_ref(), 5, &device).unwrap();
    let (loss, grads) = objective.loss_and_grad(&model).unwrap();
    let forward_only = objective.loss(&model).unwrap();
    assert!(
        (f64::from(loss) - forward_only).abs() < 1e-5,
        "{loss} vs {forward_only}"
    );
    // A central difference of the loss along the gradient recovers ‖g‖ (a
    // short step: the tiny network's loss curves strongly).
    let mut grads = grads;
    let g = ParamVector::from_gradients(&model, &mut grads);
    let norm = g.norm();
    let h = 3e-4 / norm;
    let up = objective.loss(&g.scale(h).perturb(&model)).unwrap();
    let down = objective.loss(&g.scale(-h).perturb(&model)).unwrap();
    let slope = (up - down) / (2.0 * h * norm);
    assert!(
        (slope - norm).abs() < 0.005 * norm,
        "directional derivative {slope} vs ‖g‖ {norm}"
    );
    let empty = SplitObjective::new(&dataset, &[], folder.card.scaler.as_ref(), 5, &device);
    assert!(empty.is_err());
}

#[test]
fn sharpness_and_landscape_measure_a_run_and_refuse_what_they_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, _, run) = trained_run(dir.path(), "graphsam", dmpnn());
    let folder = RunFolder::open(&run).unwrap();
    let settings = SharpnessSettings {
        part: SplitPart::Train,
        sample: Some(8),
        repeats: 2,
        seed: 4,
        rho: 0.05,
        ascent_steps: 3,
        power_iterations: 30,
        tolerance: 1e-3,
        relative_step: 1e-3,
        batch_size: 4,
    };
    let result = measure_sharpness(&folder, &dataset, &settings, &device(), |_| {}).unwrap();
    assert_eq!(result.repeats.len(), 2);
    assert_eq!(result.optimizer, "graphsam");
    for r in &result.repeats {
        assert_eq!(r.molecules, 8);
        // SAM's ε = ρ g/‖g‖ raises the loss of a smooth function; the
        // reported maximum includes it.
        assert!(r.ascent[0] > r.loss, "{r:?}");
        assert!(r.epsilon_sharpness >= r.ascent[0] - r.loss);
        assert!(
            r.top_eigenvalue.is_finite() && r.top_eigenvalue != 0.0,
            "{r:?}"
        );
        assert_eq!(r.passes, 1 + 4 + 1 + 2 * r.eigenvalue_history.len() as u64);
    }
    assert_ne!(
        result.repeats[0].loss, result.repeats[1].loss,
        "own subsets"
    );

    let landscape = LandscapeSettings {
        part: SplitPart::Valid,
        sample: None,
        dims: 2,
        points: 3,
        range: 0.5,
        seed: 1,
        batch_size: 4,
    };
    let surface = loss_landscape(&folder, &dataset, &landscape, &device(), |_, _| {}).unwrap();
    assert_eq!(surface.axis, vec![-0.5, 0.0, 0.5]);
    assert_eq!(surface.loss.len(), 9);
    // The centre is the trained weights: the plain loss on the part.
    let spec = match &folder.card.model {
        ModelSpec::Dmpnn(c) => c.clone(),
        other => panic!("{other:?}"),
    };
    let model = load_model(spec.init(&device(), 0), &run.join(files::BEST_MODEL)).unwrap();
    let valid = folder.indices(&dataset, SplitPart::Valid).unwrap();
    let objective =
        SplitObjective::new(&dataset, &valid, folder.card.scaler.as_ref(), 4, &device()).unwrap();
    assert!((surface.loss[4] - objective.loss(&model).unwrap()).abs() < 1e-6);
    assert!(surface.loss.iter().all(|v| v.is_finite()));

    // Refusals, each naming what is wrong.
    let bad = |s: SharpnessSettings| {
        measure_sharpness(&folder, &dataset, &s, &device(), |_| {})
            .unwrap_err()
            .to_string()
    };
    assert!(
        bad(SharpnessSettings {
            repeats: 0,
            ..settings.clone()
        })
        .contains("--repeats")
    );
    assert!(
        bad(SharpnessSettings {
            rho: 0.0,
            ..settings.clone()
        })
        .contains("--rho")
    );
    let err = loss_landscape(
        &folder,
        &dataset,
        &LandscapeSettings {
            dims: 3,
            ..landscape.clone()
        },
        &device(),
        |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("--dims must be 1 or 2"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = RunFolder::open(empty.path()).err().unwrap().to_string();
    assert!(err.contains("has no model.json"), "{err}");
    std::fs::copy(
        run.join(files::MODEL_CARD),
        empty.path().join(files::MODEL_CARD),
    )
    .unwrap();
    let err = RunFolder::open(empty.path()).err().unwrap().to_string();
    assert!(err.contains("has no best_model.safetensors"), "{err}");
    // Another dataset than the run's: a classification file of other size.
    let other_dir = tempfile::tempdir().unwrap();
    let (other, _) = fixture(
        other_dir.path(),
        TaskType::Classification,
        FeatureSet::Chemprop,
    );
    let err = folder
        .indices(&other, SplitPart::Train)
        .unwrap_err()
        .to_string();
    assert!(err.contains("was trained on fixture"), "{err}");
}

#[test]
fn sharpness_and_landscape_work_on_every_backbone() {
    for spec in common::tiny_backbones() {
        let name = spec.name();
        let dir = tempfile::tempdir().unwrap();
        let (dataset, _, run) = trained_run(dir.path(), "graphsam", spec);
        let folder = RunFolder::open(&run).unwrap();
        let settings = SharpnessSettings {
            part: SplitPart::Train,
            sample: Some(8),
            repeats: 1,
            seed: 4,
            rho: 0.05,
            ascent_steps: 2,
            power_iterations: 10,
            tolerance: 1e-3,
            relative_step: 1e-3,
            batch_size: 4,
        };
        let result = measure_sharpness(&folder, &dataset, &settings, &device(), |_| {}).unwrap();
        let r = &result.repeats[0];
        assert!(
            r.loss.is_finite() && r.epsilon_sharpness > 0.0 && r.top_eigenvalue.is_finite(),
            "{name}: {r:?}"
        );
        let landscape = LandscapeSettings {
            part: SplitPart::Valid,
            sample: None,
            dims: 1,
            points: 3,
            range: 0.5,
            seed: 1,
            batch_size: 4,
        };
        let surface = loss_landscape(&folder, &dataset, &landscape, &device(), |_, _| {}).unwrap();
        assert_eq!(surface.loss.len(), 3, "{name}");
        // The centre is the trained weights' loss on the validation part.
        let valid = folder.indices(&dataset, SplitPart::Valid).unwrap();
        let device = device();
        let objective =
            SplitObjective::new(&dataset, &valid, folder.card.scaler.as_ref(), 4, &device).unwrap();
        let centre = graphsam::with_model!(&folder.card.model, &device, 0, |model| {
            let model = load_model(model, &run.join(files::BEST_MODEL)).unwrap();
            objective.loss(&model).unwrap()
        });
        assert!(
            (surface.loss[1] - centre).abs() < 1e-6,
            "{name}: centre {} vs {centre}",
            surface.loss[1]
        );
        assert!(surface.loss.iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn the_commands_write_their_tables_plots_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, adam) = trained_run(dir.path(), "adam", dmpnn());
    let (_, _, sam) = trained_run(dir.path(), "sam", dmpnn());
    let graphsam = env!("CARGO_BIN_EXE_graphsam");
    let out = dir.path().join("plots/landscape");
    let output = Command::new(graphsam)
        .args([
            "landscape",
            "--quiet",
            "--points",
            "5",
            "--range",
            "0.5",
            "--run",
        ])
        .arg(&adam)
        .arg("--run")
        .arg(&sam)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("adam: train loss") && stdout.contains("sam: train loss"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.path().join("plots/landscape.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 5, "{csv}");
    assert!(csv.starts_with("run,label,alpha,beta,loss\n"));
    let svg = std::fs::read_to_string(dir.path().join("plots/landscape.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("adam") && svg.contains("sam"));
    assert!(dir.path().join("plots/landscape.json").is_file());

    let json = dir.path().join("sharpness.json");
    let output = Command::new(graphsam)
        .args([
            "sharpness",
            "--quiet",
            "--repeats",
            "2",
            "--power-iterations",
            "5",
            "--run",
        ])
        .arg(&adam)
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ε-sharpness (ρ=0.05)") && stdout.contains("adam"),
        "{stdout}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(saved[0]["repeats"].as_array().unwrap().len(), 2);

    // A folder that is not a run: a clear error, no panic.
    let output = Command::new(graphsam)
        .args(["sharpness", "--run"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no model.json"), "{stderr}");
}
