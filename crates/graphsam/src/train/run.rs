//! One complete training run for one seed: split, scale, train, test, and the
//! run record (config, split, model card, history, curve, summary) in a folder.
//! `graphsam train` runs this once per seed; `graphsam compare` once per cell.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::checkpoint::load_model;
use super::record::{files, median_train_seconds, read_json, write_json};
use super::trainer::{TrainObserver, TrainSettings, evaluate_split, fit};
use crate::data::{
    Metric, MetricScore, MoleculeDataset, Split, SplitKind, SplitSizes, TargetScaler, TaskType,
    make_split,
};
use crate::model::{ModelKind, ModelSpec, PropertyModel};
use crate::optim::{NoamLrConfig, OptimizerConfig};

/// Everything needed to reproduce a run (written as `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Dataset name (registry name or CSV stem).
    pub dataset: String,
    /// The CSV the molecules came from.
    pub dataset_path: String,
    /// SMILES column.
    pub smiles_column: String,
    /// Target columns, in task order.
    pub targets: Vec<String>,
    /// Classification or regression.
    pub task_type: TaskType,
    /// Molecules with at least this many atoms were skipped.
    pub atom_limit: Option<usize>,
    /// The backbone and its hyper-parameters.
    pub model: ModelSpec,
    /// How the data was split.
    pub split: SplitKind,
    /// Split fractions.
    pub split_sizes: SplitSizes,
    /// Seed of the split when it is fixed across runs (`--split-seed`);
    /// `None`: the split follows the run's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// Optimizer, schedule, epochs, patience, batch size, seed, metric.
    pub train: TrainSettings,
    /// Compute backend name (e.g. ndarray).
    pub backend: String,
    /// graphsam version that wrote the run.
    pub graphsam_version: String,
}

/// The settings all runs of one `train` or `compare` command share; each
/// run adds its dataset, seed and optimizer ([`RunTemplate::config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunTemplate {
    /// The backbone.
    pub model: ModelKind,
    /// Width override (see [`ModelKind::spec`]).
    pub hidden: Option<usize>,
    /// Depth override.
    pub layers: Option<usize>,
    /// How the data is split.
    pub split: SplitKind,
    /// Split fractions.
    pub split_sizes: SplitSizes,
    /// Seed of the split for every run, if fixed.
    pub split_seed: Option<u64>,
    /// Maximum epochs.
    pub epochs: usize,
    /// Early-stopping patience (0: off).
    pub patience: usize,
    /// Molecules per step.
    pub batch_size: usize,
    /// Molecules with at least this many atoms are skipped.
    pub atom_limit: Option<usize>,
    /// The learning-rate schedule.
    pub schedule: NoamLrConfig,
    /// Compute backend name.
    pub backend: String,
    /// Gradient-similarity tracking every this many steps (`None`: off).
    pub track_similarity: Option<u64>,
}

impl RunTemplate {
    /// The configuration of one run: `dataset` (found at `dataset_path`, its
    /// SMILES in `smiles_column`) trained with `optimizer` under `seed`,
    /// selected on `metric`. The optimizer's own draws (RST) follow the seed.
    pub fn config(
        &self,
        dataset: &MoleculeDataset,
        dataset_path: &str,
        smiles_column: &str,
        seed: u64,
        optimizer: OptimizerConfig,
        metric: Metric,
    ) -> Result<RunConfig> {
        let model = self
            .model
            .spec(
                &dataset.name,
                dataset.n_tasks,
                self.hidden,
                self.layers,
                self.atom_limit,
            )
            .map_err(anyhow::Error::msg)?;
        Ok(RunConfig {
            dataset: dataset.name.clone(),
            dataset_path: dataset_path.to_string(),
            smiles_column: smiles_column.to_string(),
            targets: dataset.task_names.clone(),
            task_type: dataset.task_type,
            atom_limit: self.atom_limit,
            model,
            split: self.split.clone(),
            split_sizes: self.split_sizes,
            split_seed: self.split_seed,
            train: TrainSettings {
                epochs: self.epochs,
                patience: self.patience,
                batch_size: self.batch_size,
                seed,
                optimizer: optimizer.with_seed(seed),
                schedule: self.schedule.clone(),
                metric,
                track_similarity: self.track_similarity,
            },
            backend: self.backend.clone(),
            graphsam_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }
}

/// What `predict` needs besides the weights (written as `model.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The backbone and its hyper-parameters.
    pub model: ModelSpec,
    /// Task names, in output order.
    pub task_names: Vec<String>,
    /// Classification (outputs are probabilities) or regression.
    pub task_type: TaskType,
    /// Metric the model was selected on.
    pub metric: Metric,
    /// Target standardisation fitted on the training split (regression).
    pub scaler: Option<TargetScaler>,
    /// Molecules with at least this many atoms cannot be predicted.
    pub atom_limit: Option<usize>,
    /// Dataset the model was trained on.
    pub dataset: String,
}

/// The final summary of a run (written as `summary.json`; its presence
/// marks the run as finished).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Dataset name.
    pub dataset: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Model name.
    pub model: String,
    /// Seed of the batch order and weights (and of the split unless `split_seed`).
    pub seed: u64,
    /// Seed of the split when fixed across runs; `None`: the split used `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// Metric name.
    pub metric: Metric,
    /// Test metric of the best-validation model.
    pub test: MetricScore,
    /// Best validation metric.
    pub best_valid: Option<f64>,
    /// Epoch (0-based) of the best validation metric.
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Split sizes (train, valid, test).
    pub split_sizes: [usize; 3],
    /// Median training wall seconds per epoch ([`median_train_seconds`]).
    pub seconds_per_epoch: f64,
    /// Mean forward+backward passes per epoch.
    pub passes_per_epoch: f64,
    /// Wall time of the whole run, seconds (this process only, if resumed).
    pub wall_seconds: f64,
    /// The CPU the run was timed on ([`machine_description`]), so tables that
    /// merge cells from several machines can say so (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// The CPU this process runs on, as far as it matters for timings: model
/// name, family/model numbers, cores available, widest vector unit. `None`
/// where the system does not say (non-Linux).
pub fn machine_description() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let name = field("model name")?;
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let vector = if has("avx512f") {
        "AVX-512"
    } else if has("avx2") {
        "AVX2"
    } else {
        "no AVX2"
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let family = match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!(" (family {f}, model {m})"),
        _ => String::new(),
    };
    Some(format!("{name}{family}, {cores} cores, {vector}"))
}

/// Trains one seed into `out_dir` and returns its summary. If `out_dir`
/// already holds a finished run (a summary), that summary is returned
/// without training; an unfinished one resumes from its checkpoint.
pub fn run_seed(
    dataset: &MoleculeDataset,
    config: &RunConfig,
    device: &Device,
    out_dir: &Path,
    observer: &mut dyn TrainObserver,
) -> Result<RunSummary> {
    let summary_path = out_dir.join(files::SUMMARY);
    if summary_path.exists() {
        return read_json(&summary_path);
    }
    dataset.check_classes()?;
    let config_path = out_dir.join(files::CONFIG);
    if config_path.exists() {
        let existing: RunConfig = read_json(&config_path)?;
        if existing != *config {
            bail!(
                "{} holds an unfinished run with a different configuration; \
                 choose another --out folder or delete it",
                out_dir.display()
            );
        }
    }
    write_json(&config_path, config)?;
    let seed = config.train.seed;
    let split_seed = config.split_seed.unwrap_or(seed);
    let split = make_split(dataset, &config.split, config.split_sizes, split_seed)
        .with_context(|| format!("splitting {}", dataset.name))?;
    // A test split that cannot be scored would fail the run after training.
    if !dataset.can_score(&split.test) {
        bail!(
            "the test split of {} ({} molecules) cannot be scored: no task has {} there; \
             use more molecules, other --sizes, or another seed",
            dataset.name,
            split.test.len(),
            match dataset.task_type {
                TaskType::Classification => "both classes",
                TaskType::Regression => "a label",
            }
        );
    }
    write_json(&out_dir.join(files::SPLIT), &split)?;
    let scaler = (dataset.task_type == TaskType::Regression)
        .then(|| TargetScaler::fit(dataset, &split.train));
    write_json(
        &out_dir.join(files::MODEL_CARD),
        &ModelCard {
            model: config.model.clone(),
            task_names: dataset.task_names.clone(),
            task_type: dataset.task_type,
            metric: config.train.metric,
            scaler: scaler.clone(),
            atom_limit: config.atom_limit,
            dataset: dataset.name.clone(),
        },
    )?;
    let started = Instant::now();
    // Initialise on the CPU without autodiff: parameters must be leaves
    // before `fit` moves them to the training device and marks them
    // trainable, and the backends' generators differ, so drawing on the CPU
    // gives one seed the same initial weights on every device.
    let init_device = crate::device::ComputeBackend::default_cpu().device();
    let summary = crate::with_model!(&config.model, &init_device, seed, |model| {
        train_and_test(
            model,
            dataset,
            &split,
            scaler.as_ref(),
            config,
            device,
            out_dir,
            observer,
        )
    })?;
    let summary = RunSummary {
        wall_seconds: started.elapsed().as_secs_f64(),
        ..summary
    };
    write_json(&summary_path, &summary)?;
    // Return exactly what a later call (or `compare --merge`) reads back.
    read_json(&summary_path)
}

#[allow(clippy::too_many_arguments)]
fn train_and_test<M: PropertyModel>(
    model: M,
    dataset: &MoleculeDataset,
    split: &Split,
    scaler: Option<&TargetScaler>,
    config: &RunConfig,
    device: &Device,
    out_dir: &Path,
    observer: &mut dyn TrainObserver,
) -> Result<RunSummary> {
    let outcome = fit(
        model,
        dataset,
        split,
        scaler,
        &config.train,
        device,
        Some(out_dir),
        observer,
    )?;
    let plain = device_without_autodiff(device);
    // Reload the saved best model so the reported test metric is exactly
    // what `graphsam predict` will reproduce from the files.
    let best = load_model(outcome.best_model, &out_dir.join(files::BEST_MODEL))?;
    let test = evaluate_split(
        &best,
        dataset,
        &split.test,
        scaler,
        config.train.metric,
        &plain,
    )
    .with_context(|| format!("evaluating the test split of {}", dataset.name))?;
    let epochs = outcome.history.len().max(1) as f64;
    Ok(RunSummary {
        dataset: dataset.name.clone(),
        optimizer: config.train.optimizer.name().to_string(),
        model: config.model.name().to_string(),
        seed: config.train.seed,
        split_seed: config.split_seed,
        metric: config.train.metric,
        test,
        best_valid: outcome.best_valid,
        best_epoch: outcome.best_epoch,
        epochs_run: outcome.history.len(),
        stopped_early: outcome.stopped_early,
        split_sizes: split.sizes(),
        seconds_per_epoch: median_train_seconds(&outcome.history),
        passes_per_epoch: outcome
            .history
            .iter()
            .map(|r| r.forward_passes as f64)
            .sum::<f64>()
            / epochs,
        wall_seconds: 0.0,
        machine: machine_description(),
    })
}

/// The inference device matching a (possibly autodiff) training device.
pub fn device_without_autodiff(device: &Device) -> Device {
    device.clone().inner()
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn the_machine_is_described_by_cpu_cores_and_vector_width() {
        let m = super::machine_description().expect("/proc/cpuinfo names the CPU");
        let cores = std::thread::available_parallelism().unwrap().get();
        assert!(m.contains(&format!(", {cores} cores, ")), "{m}");
        assert!(
            m.ends_with("AVX-512") || m.ends_with("AVX2") || m.ends_with("no AVX2"),
            "{m}"
        );
    }
}
