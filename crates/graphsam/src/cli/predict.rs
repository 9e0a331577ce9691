//! `graphsam predict`: predictions of a trained model (or an ensemble) for
//! molecules streamed from a CSV or .smi file, written as they are made.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::device_args::DeviceArgs;
use super::screen_io::{InputArgs, Output, SkipReport, StreamProgress, counted};
use crate::train::inference::Ensemble;
use crate::train::screen::{ScreenOptions, ScreenOutput, screen};

/// Arguments of `graphsam predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Trained model: a run folder (holds model.json and best_model.safetensors,
    /// e.g. runs/bbbp-compt-graphsam/seed-0) or a training output folder, whose
    /// seed-* runs predict as an ensemble. Repeat --model for more members; with two or
    /// more members each task gets a `<task>_std` column (spread between members).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// The molecules to read and how.
    #[command(flatten)]
    pub input: InputArgs,
    /// Write predictions here (CSV: line, smiles, [name,] one column per task;
    /// gzip-compressed when the name ends in .gz); default: standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Molecules per model batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Where the model runs.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs the command.
pub fn run(args: PredictArgs) -> Result<()> {
    let ensemble = Ensemble::load(&args.models)?;
    let card = ensemble.card().clone();
    let device = args.device.inference_device()?;
    let mut source = args.input.open()?;
    let names = args.input.has_names();

    let mut writer = csv::Writer::from_writer(Output::create(args.out.as_deref())?);
    let mut header = vec!["line".to_string(), "smiles".to_string()];
    if names {
        header.push("name".into());
    }
    header.extend(card.task_names.iter().cloned());
    if ensemble.members.len() > 1 {
        header.extend(card.task_names.iter().map(|t| format!("{t}_std")));
    }
    writer.write_record(&header)?;

    let mut skips = SkipReport::new(args.input.errors.as_deref())?;
    let mut progress = StreamProgress::new(&source, args.input.quiet);
    let options = ScreenOptions {
        batch_size: args.batch_size as usize,
        chunk_size: args.input.chunk_size as usize,
    };
    let bytes = source.bytes_read_counter();
    let mut record = Vec::with_capacity(header.len());
    let outcome = screen(
        &ensemble,
        &mut source,
        ScreenOutput::Predictions,
        &device,
        options,
        &mut |chunk| {
            let molecules = &chunk.input.molecules;
            let tasks = chunk.width;
            for i in 0..molecules.len() {
                record.clear();
                record.push(molecules.source_lines[i].to_string());
                record.push(molecules.smiles[i].clone());
                if names {
                    record.push(chunk.input.names[i].clone().unwrap_or_default());
                }
                let row = i * tasks..(i + 1) * tasks;
                record.extend(
                    chunk.values.mean[row.clone()]
                        .iter()
                        .map(|v| format!("{v:.6}")),
                );
                if let Some(std) = &chunk.values.std {
                    record.extend(std[row].iter().map(|v| format!("{v:.6}")));
                }
                writer.write_record(&record)?;
            }
            skips.add(&molecules.skipped, &progress.bar)?;
            progress.advance(molecules.len() as u64, bytes.get());
            Ok(())
        },
    );
    // What was predicted before an input error is kept: finish the files first.
    let finished = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing predictions: {}", e.error()))
        .and_then(Output::finish);
    let skipped = skips.finish()?;
    outcome?;
    finished?;
    progress.finish(
        &format!(
            "predicted {} with {} for",
            counted(card.task_names.len() as u64, "task"),
            counted(ensemble.members.len() as u64, "model")
        ),
        skipped,
    );
    if let Some(path) = &args.out {
        eprintln!("predictions written to {}", path.display());
    }
    Ok(())
}
