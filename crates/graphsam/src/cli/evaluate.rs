//! `graphsam evaluate`: a trained model's metric on a dataset or one part of its split.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::dataset_args::DatasetArgs;
use super::device_args::DeviceArgs;
use graphsam::data::{LoadOptions, Split, evaluate};
use graphsam::train::inference::{load_card, predict_with_card};
use graphsam::train::record::{files, read_json};

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
    /// Run folder of a trained model (e.g. runs/NAME/seed-0).
    #[arg(long = "model")]
    pub model_dir: PathBuf,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Molecules to score: the run's test/valid/train split, or all of the dataset.
    #[arg(long, value_enum, default_value = "test")]
    pub part: Part,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs the command.
pub fn run(args: EvaluateArgs) -> Result<()> {
    let card = load_card(&args.model_dir)?;
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
            let split: Split = read_json(&args.model_dir.join(files::SPLIT))?;
            split.validate(dataset.len())?;
            match part {
                Part::Test => split.test,
                Part::Valid => split.valid,
                _ => split.train,
            }
        }
    };
    let device = args.device.inference_device()?;
    let predictions = predict_with_card(&args.model_dir, &card, &dataset, &indices, &device)?;
    let mut targets = Vec::with_capacity(predictions.len());
    for &i in &indices {
        targets.extend_from_slice(dataset.targets_of(i));
    }
    let score = evaluate(card.metric, &predictions, &targets, dataset.n_tasks)?;
    println!(
        "{} ({:?}, {} molecules): {} = {:.4}",
        dataset.name,
        args.part,
        indices.len(),
        card.metric.name(),
        score.value
    );
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
