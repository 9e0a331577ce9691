//! `graphsam train`: train a backbone on a dataset over one or more seeds.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::dataset_args::DatasetArgs;
use super::device_args::DeviceArgs;
use super::progress::EpochProgress;
use super::train_args::{LoopArgs, ModelArgs, OptimizerArgs, ScheduleArgs};
use crate::data::{LoadOptions, MoleculeDataset};
use crate::model::{ModelKind, ModelSpec};
use crate::train::stats::mean_std;
use crate::train::{RunSummary, run_seed};

/// Arguments of `graphsam train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Which dataset, and how its CSV reads.
    #[command(flatten)]
    pub data: DatasetArgs,
    /// The backbone and its size.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimizer: adam, sam, graphsam, sam-k, looksam, ae-sam or rst.
    #[arg(long, default_value = "graphsam")]
    pub optimizer: String,
    /// The optimizer and its hyperparameters.
    #[command(flatten)]
    pub optimizer_flags: OptimizerArgs,
    /// The learning-rate schedule.
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Number of repeated runs; run k uses seed k for its batches and weights, and
    /// for its split unless --split-seed fixes it.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Epochs, batches, seeds and early stopping.
    #[command(flatten)]
    pub training: LoopArgs,
    /// Output folder (default runs/<dataset>-<model>-<optimizer>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the model runs.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// No progress bars; one line per epoch.
    #[arg(long)]
    pub quiet: bool,
}

/// Builds the model spec for a dataset from the model flags (CoMPT's
/// position table sized for the atom limit the dataset was loaded with).
pub fn model_spec(
    args: &ModelArgs,
    dataset: &MoleculeDataset,
    atom_limit: Option<usize>,
) -> Result<ModelSpec> {
    args.spec(&dataset.name, dataset.n_tasks, atom_limit)
}

/// Says so when CoMPT falls back on BBBP's row of the paper's table for a
/// dataset the table does not cover.
pub fn note_default_settings(model: &ModelSpec, dataset: &str) {
    if let ModelSpec::Compt(c) = model
        && crate::model::compt::ComptConfig::paper_settings(dataset, c.n_tasks).is_none()
    {
        eprintln!(
            "note: `{dataset}` is not in the paper's per-dataset table; CoMPT uses BBBP's settings \
             ({} layers, {} heads, {:?} kernel, {:?}, d {}); change width and depth with --hidden/--layers",
            c.layers, c.heads, c.kernel, c.norm, c.d_model
        );
    }
}

/// Load options for a backbone (CoMPT drops molecules of ≥ 100 atoms, as the reference).
pub fn load_options(model: ModelKind, atom_limit: Option<usize>) -> LoadOptions {
    let mut options = LoadOptions::for_features(model.feature_set());
    if atom_limit.is_some() {
        options.atom_limit = atom_limit;
    }
    options
}

/// Runs the command.
pub fn run(args: TrainArgs) -> Result<()> {
    let optimizer = args.optimizer_flags.config(&args.optimizer)?;
    let (spec, _) = args.data.spec()?;
    let options = load_options(args.model.model, args.training.atom_limit);
    // Every flag is checked before the dataset loads.
    let template = args.training.template(
        &args.model,
        &args.schedule,
        options.atom_limit,
        args.device.name(),
    )?;
    let dataset = args.data.load(&options)?;
    super::report_skipped(&dataset);
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}-{}",
            dataset.name,
            args.model.model,
            optimizer.name()
        ))
    });
    let device = args.device.training_device()?;
    let mut summaries: Vec<RunSummary> = Vec::new();
    for seed in 0..args.seeds {
        let config = template.config(
            &dataset,
            &args.data.dataset,
            &spec.smiles_column,
            seed,
            optimizer.clone(),
            spec.metric,
        )?;
        let model = &config.model;
        if seed == 0 {
            note_default_settings(model, &dataset.name);
        }
        let dir = out.join(format!("seed-{seed}"));
        eprintln!(
            "training {} on {} ({} molecules) with {}, seed {seed} -> {}",
            model.name(),
            dataset.name,
            dataset.len(),
            optimizer.name(),
            dir.display()
        );
        let mut progress = EpochProgress::new(args.quiet);
        let summary = run_seed(&dataset, &config, &device, &dir, &mut progress)
            .with_context(|| format!("seed {seed}"))?;
        println!(
            "seed {seed}: test {} = {:.4} (best epoch {}, {} epochs, {:.1} s/epoch)",
            summary.metric.name(),
            summary.test.value,
            summary.best_epoch,
            summary.epochs_run,
            summary.seconds_per_epoch
        );
        summaries.push(summary);
    }
    let values: Vec<f64> = summaries.iter().map(|s| s.test.value).collect();
    let (mean, std) = mean_std(&values);
    println!(
        "{} {} {}: test {} = {mean:.4} ± {std:.4} over {} seed(s); records in {}",
        dataset.name,
        args.model.model,
        optimizer.name(),
        spec.metric.name(),
        values.len(),
        out.display()
    );
    crate::train::record::write_json(&out.join("summary.json"), &summaries)?;
    Ok(())
}
