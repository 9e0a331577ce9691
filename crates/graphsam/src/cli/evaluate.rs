//! `graphsam evaluate`: a trained model's metric on a dataset or one part of its split.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::dataset_args::DatasetArgs;
use super::device_args::DeviceArgs;
use crate::data::{LoadOptions, Split, evaluate};
use crate::train::inference::{Ensemble, as_scores};
use crate::train::record::{files, read_json};

/// Which molecules to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The run's test split (the same dataset as training).
    Test,
    /// The run's validation split.
    Valid,
    /// The run's training split.
    Train,
    /// Every valid molecule of the dataset.
    All,
}

/// Arguments of `graphsam evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Trained model: a run folder (e.g. runs/NAME/seed-0) or a training output
    /// folder whose seed-* runs are scored as an ensemble and one by one (repeat
    /// --model for more members).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// Which dataset, and how its CSV reads.
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Molecules to score: the run's test/valid/train split, or all of the dataset.
    #[arg(long, value_enum, default_value = "test")]
    pub part: Part,
    /// Where the model runs.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs the command.
pub fn run(args: EvaluateArgs) -> Result<()> {
    let ensemble = Ensemble::load(&args.models)?;
    let card = ensemble.card().clone();
    let options = LoadOptions {
        features: Some(card.model.feature_set()),
        atom_limit: card.atom_limit,
        scaffolds: false,
    };
    let dataset = args.data.load(&options)?;
    if dataset.n_tasks != card.task_names.len() {
        bail!(
            "{} has {} target columns but the model predicts {} tasks ({})",
            dataset.name,
            dataset.n_tasks,
            card.task_names.len(),
            card.task_names.join(", ")
        );
    }
    let indices: Vec<usize> = match args.part {
        Part::All => (0..dataset.len()).collect(),
        part => {
            // Every member must have been trained on this one split.
            let (first_dir, _) = &ensemble.members[0];
            let split: Split = read_json(&first_dir.join(files::SPLIT))?;
            for (dir, _) in &ensemble.members[1..] {
                if read_json::<Split>(&dir.join(files::SPLIT))? != split {
                    bail!(
                        "{} and {} were trained on different splits, so there is no common {:?} \
                         part: use --part all, or members trained with --split-seed",
                        first_dir.display(),
                        dir.display(),
                        part
                    );
                }
            }
            split.validate(dataset.len())?;
            match part {
                Part::Test => split.test,
                Part::Valid => split.valid,
                _ => split.train,
            }
        }
    };
    let device = args.device.inference_device()?;
    let predicted = ensemble.predict(&dataset, &indices, &device)?;
    let mut targets = Vec::with_capacity(predicted.mean.len());
    for &i in &indices {
        targets.extend_from_slice(dataset.targets_of(i));
    }
    let scores = |values: &[f64]| as_scores(values, card.task_type);
    let score = evaluate(
        card.metric,
        &scores(&predicted.mean),
        &targets,
        dataset.n_tasks,
    )?;
    println!(
        "{} ({:?}, {} molecules): {} = {:.4}{}",
        dataset.name,
        args.part,
        indices.len(),
        card.metric.name(),
        score.value,
        if ensemble.members.len() > 1 {
            format!(" (ensemble of {})", ensemble.members.len())
        } else {
            String::new()
        }
    );
    if ensemble.members.len() > 1 {
        for ((dir, _), member) in ensemble.members.iter().zip(&predicted.members) {
            let s = evaluate(card.metric, &scores(member), &targets, dataset.n_tasks)?;
            println!(
                "  member {}: {} = {:.4}",
                dir.display(),
                card.metric.name(),
                s.value
            );
        }
    }
    if dataset.n_tasks > 1 {
        for (name, value) in card.task_names.iter().zip(&score.per_task) {
            match value {
                Some(v) => println!("  {name:<30} {v:.4}"),
                None => println!("  {name:<30} n/a (one class only)"),
            }
        }
    }
    Ok(())
}
