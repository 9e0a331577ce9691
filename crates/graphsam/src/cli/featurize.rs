//! `graphsam featurize`: turn a CSV of SMILES into feature arrays and report bad rows.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use serde::Serialize;

use graphsam::data::{DatasetSpec, LoadOptions, MoleculeDataset, TaskType};
use graphsam::features::FeatureSet;

/// Arguments of `graphsam featurize`.
#[derive(Debug, Args)]
pub struct FeaturizeArgs {
    /// CSV file with a header row.
    pub csv: PathBuf,
    /// Header of the SMILES column.
    #[arg(long, default_value = "smiles")]
    pub smiles_column: String,
    /// Feature set: compt (115 atom / 13 bond), chemprop (133 / 14) or grover (151 / 14).
    #[arg(long, default_value = "compt")]
    pub features: FeatureSet,
    /// Write the features as JSON lines (one object per valid molecule) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress spinner.
    #[arg(long)]
    pub quiet: bool,
}

/// One featurized molecule as written by `--out` (JSON lines).
#[derive(Serialize)]
struct FeaturizedRow<'a> {
    line: u64,
    smiles: &'a str,
    n_atoms: usize,
    atom_dim: usize,
    bond_dim: usize,
    atom_features: &'a [f32],
    bonds: &'a [[u32; 2]],
    bond_features: &'a [f32],
    #[serde(skip_serializing_if = "Option::is_none")]
    distances: Option<&'a [f32]>,
}

/// Runs the command.
pub fn run(args: FeaturizeArgs) -> Result<()> {
    // The same CSV path as training: one line counter, one set of row checks.
    let spec = DatasetSpec::custom(
        args.csv
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        args.smiles_column.clone(),
        Vec::new(),
        TaskType::Regression,
    );
    let options = LoadOptions {
        features: Some(args.features),
        atom_limit: None,
        scaffolds: false,
    };
    let spinner = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner().with_message("featurizing")
    };
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let started = Instant::now();
    let dataset = MoleculeDataset::load(&args.csv, &spec, &options)
        .with_context(|| format!("loading {}", args.csv.display()));
    spinner.finish_and_clear();
    let dataset = dataset?;
    let seconds = started.elapsed().as_secs_f64();
    let rows = dataset.len() + dataset.skipped.len();
    println!(
        "{}: {} molecules featurized with {} features ({} atom / {} bond dims) in {:.2} s ({:.0} molecules/s)",
        args.csv.display(),
        dataset.len(),
        args.features.name(),
        args.features.atom_dim(),
        args.features.bond_dim(),
        seconds,
        rows as f64 / seconds.max(1e-9),
    );
    if !dataset.skipped.is_empty() {
        println!("{} invalid rows skipped:", dataset.skipped.len());
        for row in &dataset.skipped {
            println!("  line {}: {:?}: {}", row.line, row.smiles, row.reason);
        }
    }
    if let Some(out) = &args.out {
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        for ((line, smiles), g) in dataset
            .source_lines
            .iter()
            .zip(&dataset.smiles)
            .zip(&dataset.graphs)
        {
            let row = FeaturizedRow {
                line: *line,
                smiles,
                n_atoms: g.n_atoms,
                atom_dim: args.features.atom_dim(),
                bond_dim: args.features.bond_dim(),
                atom_features: &g.atom_features,
                bonds: &g.bonds,
                bond_features: &g.bond_features,
                distances: g.distances.as_deref(),
            };
            serde_json::to_writer(&mut writer, &row)?;
            writer.write_all(b"\n")?;
        }
        writer
            .flush()
            .with_context(|| format!("writing {}", out.display()))?;
        println!("features written to {}", out.display());
    }
    Ok(())
}
