//! The GPU code path: CoMPT trained with GraphSAM on the wgpu backend
//! follows the CPU backend's loss trajectory step for step.
//!
//! Without a GPU this runs on a software Vulkan (Mesa's lavapipe, which
//! `.ci/run` installs). Where no adapter exists at all the test says so and
//! passes, unless `GRAPHSAM_REQUIRE_GPU=1` (set by `.ci/run`) makes that a
//! failure, so CI cannot silently skip it.
#![cfg(feature = "gpu")]

use burn::tensor::Device;
use graphsam::data::{BatchLayout, Metric, MoleculeDataset, Split, TaskType};
use graphsam::device::{ComputeBackend, GpuAdapter};
use graphsam::model::compt::ComptConfig;
use graphsam::model::{ModelSpec, PropertyModel};
use graphsam::optim::{NoamLrConfig, StepReport};
use graphsam::train::{TrainObserver, TrainSettings, fit};

mod common;

use common::SMILES;

/// Relative tolerance on each step's loss. f32 kernels on two backends sum
/// in different orders (~1e-6 relative per op); over 12 steps of Adam that
/// stays far below this. A wrong kernel or a perturbation on the wrong
/// device moves the loss by percents.
const LOSS_RTOL: f64 = 1e-3;
/// Absolute tolerance on the trained model's predicted probabilities.
const PROBABILITY_ATOL: f64 = 1e-3;

#[derive(Default)]
struct Steps(Vec<StepReport>);

impl TrainObserver for Steps {
    fn step_finished(&mut self, report: &StepReport, _molecules: usize) {
        self.0.push(report.clone());
    }
}

/// The GPU to test: the best adapter, else a software one; `None` when
/// wgpu finds neither.
fn gpu() -> Option<(ComputeBackend, String)> {
    let mut reasons = Vec::new();
    for adapter in [GpuAdapter::Best, GpuAdapter::Software] {
        let backend = ComputeBackend::Wgpu(adapter);
        match backend.init() {
            Ok(ready) => return Some((backend, ready.description)),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    let message = format!("no wgpu adapter: {}", reasons.join("; "));
    if std::env::var("GRAPHSAM_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("GRAPHSAM_REQUIRE_GPU=1 but {message}");
    }
    eprintln!("SKIPPED: {message} (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers)");
    None
}

/// Trains 3 epochs of 4 steps and returns every step's report and the
/// trained model's probabilities for the 16 molecules.
fn train<M: PropertyModel>(
    model: M,
    data: &MoleculeDataset,
    device: &Device,
) -> (Vec<StepReport>, Vec<f32>) {
    let all: Vec<usize> = (0..data.len()).collect();
    let split = Split {
        train: all.clone(),
        valid: all.clone(),
        test: all.clone(),
    };
    let settings = TrainSettings {
        epochs: 3,
        patience: 0,
        batch_size: 4,
        seed: 5,
        optimizer: "graphsam".parse().unwrap(),
        schedule: NoamLrConfig {
            init_lr: 1e-3,
            max_lr: 1e-3,
            final_lr: 1e-3,
            warmup_epochs: 0.0,
        },
        metric: Metric::RocAuc,
        track_similarity: None,
    };
    let mut steps = Steps::default();
    let outcome = fit(
        model, data, &split, None, &settings, device, None, &mut steps,
    )
    .unwrap();
    let plain = device.clone().inner();
    let model = outcome.best_model.valid();
    let input = M::input(&M::Batch::assemble(data, &all, None).unwrap(), &plain).unwrap();
    let probabilities = model
        .predict(&input, TaskType::Classification)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    (steps.0, probabilities)
}

#[test]
fn compt_with_graphsam_on_wgpu_follows_the_cpu_trajectory() {
    let Some((backend, description)) = gpu() else {
        return;
    };
    eprintln!("GPU under test: {description}");
    let spec = ModelSpec::Compt(ComptConfig::tiny(1));
    let data = common::tiny_classification(spec.feature_set());
    let cpu = ComputeBackend::default_cpu();
    // One initialisation, made on the CPU and copied to both devices: the
    // backends' random generators differ, the trajectories must not.
    let (cpu_steps, cpu_probs, gpu_steps, gpu_probs) =
        graphsam::with_model!(&spec, &cpu.device(), 3, |model| {
            let gpu_model = model.clone();
            let (cs, cp) = train(model, &data, &cpu.autodiff_device());
            let (gs, gp) = train(gpu_model, &data, &backend.autodiff_device());
            (cs, cp, gs, gp)
        });

    assert_eq!(cpu_steps.len(), 12);
    assert_eq!(gpu_steps.len(), cpu_steps.len());
    for (c, g) in cpu_steps.iter().zip(&gpu_steps) {
        eprintln!(
            "step {:>2}: loss cpu {:.6} gpu {:.6}  ‖ε‖ cpu {:?} gpu {:?}",
            c.step, c.loss, g.loss, c.perturbation_norm, g.perturbation_norm
        );
        assert_eq!(
            (c.step, c.passes, c.exact_perturbation),
            (g.step, g.passes, g.exact_perturbation),
            "same schedule of passes"
        );
        let (lc, lg) = (c.loss as f64, g.loss as f64);
        assert!(lg.is_finite(), "step {}: GPU loss {lg}", c.step);
        assert!(
            (lc - lg).abs() <= LOSS_RTOL * lc.abs().max(1e-3),
            "step {}: loss on CPU {lc} and on GPU {lg} differ by more than {LOSS_RTOL} relative",
            c.step
        );
        match (c.perturbation_norm, g.perturbation_norm) {
            (Some(a), Some(b)) => {
                assert!(
                    (a - b).abs() <= 1e-3 * a.max(1e-9),
                    "step {}: ‖ε‖ {a} vs {b}",
                    c.step
                )
            }
            (a, b) => assert_eq!(
                a.is_some(),
                b.is_some(),
                "step {}: perturbation applied on one device only",
                c.step
            ),
        }
    }
    // The loss moved, so the comparison above is about training, not a frozen model.
    let first = cpu_steps[0].loss;
    assert!(
        cpu_steps.iter().any(|s| (s.loss - first).abs() > 1e-3),
        "the loss never changed"
    );

    assert_eq!(cpu_probs.len(), SMILES.len());
    for (i, (c, g)) in cpu_probs.iter().zip(&gpu_probs).enumerate() {
        assert!(
            ((c - g).abs() as f64) <= PROBABILITY_ATOL,
            "{}: probability on CPU {c} and on GPU {g}",
            SMILES[i]
        );
    }
}
