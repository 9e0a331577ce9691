//! `graphsam featurize`: turn a CSV of SMILES into feature arrays and report bad rows.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use graphsam_chem::features::{FeatureSet, MolGraph, featurize_smiles};

use super::progress::counter_bar;

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
    /// No progress bar.
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

/// Reads the SMILES column with each row's file line (header = line 1).
fn read_smiles_column(args: &FeaturizeArgs) -> Result<Vec<(u64, String)>> {
    let bytes =
        std::fs::read(&args.csv).with_context(|| format!("reading {}", args.csv.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .with_context(|| format!("{}: reading the header row", args.csv.display()))?
        .clone();
    let column = headers
        .iter()
        .position(|h| h.trim() == args.smiles_column)
        .with_context(|| {
            format!(
                "{}: no column named `{}` (columns: {})",
                args.csv.display(),
                args.smiles_column,
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })?;
    let mut rows = Vec::new();
    // Line numbers from byte offsets: the csv crate's own line counter is
    // off by one on CRLF files (MoleculeNet's BBBP.csv is one).
    let (mut counted_to, mut line) = (0usize, 1u64);
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: malformed CSV", args.csv.display()))?;
        let mut offset = record.position().map_or(counted_to, |p| p.byte() as usize);
        // On CRLF files a record's position can point at the '\n' that ends the previous line.
        while matches!(bytes.get(offset), Some(b'\r' | b'\n')) {
            offset += 1;
        }
        line += bytes[counted_to..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        counted_to = offset;
        rows.push((line, record.get(column).unwrap_or("").trim().to_string()));
    }
    if rows.is_empty() {
        bail!("{} has a header but no data rows", args.csv.display());
    }
    Ok(rows)
}

/// Runs the command.
pub fn run(args: FeaturizeArgs) -> Result<()> {
    let rows = read_smiles_column(&args)?;
    let started = Instant::now();
    let bar = counter_bar(rows.len() as u64, "featurizing", args.quiet);
    let results: Vec<Result<MolGraph, String>> = rows
        .par_iter()
        .map(|(_, smiles)| {
            let result = if smiles.is_empty() {
                Err("empty SMILES".to_string())
            } else {
                featurize_smiles(smiles, args.features).map_err(|e| e.to_string())
            };
            bar.inc(1);
            result
        })
        .collect();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();

    let valid = results.iter().filter(|r| r.is_ok()).count();
    let invalid: Vec<_> = rows
        .iter()
        .zip(&results)
        .filter_map(|((line, smiles), r)| r.as_ref().err().map(|e| (line, smiles, e)))
        .collect();
    println!(
        "{}: {valid} molecules featurized with {} features ({} atom / {} bond dims) in {:.2} s ({:.0} molecules/s)",
        args.csv.display(),
        args.features.name(),
        args.features.atom_dim(),
        args.features.bond_dim(),
        seconds,
        rows.len() as f64 / seconds.max(1e-9),
    );
    if !invalid.is_empty() {
        println!("{} invalid rows skipped:", invalid.len());
        for (line, smiles, reason) in &invalid {
            println!("  line {line}: {smiles:?}: {reason}");
        }
    }
    if let Some(out) = &args.out {
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        for ((line, smiles), result) in rows.iter().zip(&results) {
            if let Ok(g) = result {
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
        }
        writer
            .flush()
            .with_context(|| format!("writing {}", out.display()))?;
        println!("features written to {}", out.display());
    }
    Ok(())
}
