//! `graphsam predict`: predictions of a trained model for a CSV of SMILES.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::device_args::DeviceArgs;
use graphsam::data::{DatasetSpec, LoadOptions, MoleculeDataset};
use graphsam::train::inference::Ensemble;

/// Arguments of `graphsam predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Trained model: a run folder (holds model.json and best_model.safetensors,
    /// e.g. runs/bbbp-compt-graphsam/seed-0) or a training output folder, whose
    /// seed-* runs predict as an ensemble. Repeat --model for more members; with two or
    /// more members each task gets a `<task>_std` column (spread between members).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
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
    let ensemble = Ensemble::load(&args.models)?;
    let card = ensemble.card().clone();
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
    let predicted = ensemble.predict(&dataset, &indices, &device)?;

    let sink: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = csv::Writer::from_writer(sink);
    let mut header = vec!["line".to_string(), "smiles".to_string()];
    header.extend(card.task_names.iter().cloned());
    if predicted.std.is_some() {
        header.extend(card.task_names.iter().map(|t| format!("{t}_std")));
    }
    writer.write_record(&header)?;
    let tasks = dataset.n_tasks.max(1);
    for i in 0..dataset.len() {
        let mut record = vec![
            dataset.source_lines[i].to_string(),
            dataset.smiles[i].clone(),
        ];
        let row = i * tasks..(i + 1) * tasks;
        record.extend(
            predicted.mean[row.clone()]
                .iter()
                .map(|v| format!("{v:.6}")),
        );
        if let Some(std) = &predicted.std {
            record.extend(std[row].iter().map(|v| format!("{v:.6}")));
        }
        writer.write_record(&record)?;
    }
    writer.flush()?;
    if let Some(path) = &args.out {
        eprintln!(
            "{} predictions by {} model(s) for {} molecules written to {} ({} rows skipped)",
            card.task_names.len(),
            ensemble.members.len(),
            dataset.len(),
            path.display(),
            dataset.skipped.len()
        );
    }
    Ok(())
}
