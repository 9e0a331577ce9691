//! `graphsam predict`: predictions of a trained model for a CSV of SMILES.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::device_args::DeviceArgs;
use graphsam::data::{DatasetSpec, LoadOptions, MoleculeDataset, TaskType};
use graphsam::train::inference::{load_card, predict_with_card};
use graphsam::train::probability;

/// Arguments of `graphsam predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Run folder of a trained model (holds model.json and best_model.safetensors),
    /// e.g. runs/bbbp-compt-graphsam/seed-0.
    #[arg(long = "model")]
    pub model_dir: PathBuf,
    /// CSV with a header row and a SMILES column.
    pub csv: PathBuf,
    /// Header of the SMILES column.
    #[arg(long, default_value = "smiles")]
    pub smiles_column: String,
    /// Write predictions here (CSV: line, smiles, one column per task); default: standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs the command.
pub fn run(args: PredictArgs) -> Result<()> {
    let card = load_card(&args.model_dir)?;
    let spec = DatasetSpec::custom(
        args.csv
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        args.smiles_column.clone(),
        Vec::new(),
        card.task_type,
    );
    let options = LoadOptions {
        features: Some(card.model.feature_set()),
        atom_limit: card.atom_limit,
        scaffolds: false,
    };
    let mut dataset = MoleculeDataset::load(&args.csv, &spec, &options)
        .with_context(|| format!("loading {}", args.csv.display()))?;
    super::report_skipped(&dataset);
    // The CSV has no labels: give the dataset the model's tasks, all missing.
    dataset.n_tasks = card.task_names.len();
    dataset.task_names = card.task_names.clone();
    dataset.targets = vec![f32::NAN; dataset.len() * dataset.n_tasks];
    let indices: Vec<usize> = (0..dataset.len()).collect();
    let device = args.device.inference_device()?;
    let predictions = predict_with_card(&args.model_dir, &card, &dataset, &indices, &device)?;

    let sink: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = csv::Writer::from_writer(sink);
    let mut header = vec!["line".to_string(), "smiles".to_string()];
    header.extend(card.task_names.iter().cloned());
    writer.write_record(&header)?;
    for (i, row) in predictions.chunks(dataset.n_tasks.max(1)).enumerate() {
        let mut record = vec![
            dataset.source_lines[i].to_string(),
            dataset.smiles[i].clone(),
        ];
        record.extend(row.iter().map(|&v| match card.task_type {
            TaskType::Classification => format!("{:.6}", probability(v)),
            TaskType::Regression => format!("{v:.6}"),
        }));
        writer.write_record(&record)?;
    }
    writer.flush()?;
    if let Some(path) = &args.out {
        eprintln!(
            "{} predictions for {} molecules written to {} ({} rows skipped)",
            card.task_names.len(),
            dataset.len(),
            path.display(),
            dataset.skipped.len()
        );
    }
    Ok(())
}
