//! `graphsam featurize`: turn a CSV or .smi file of SMILES into feature arrays and report bad rows.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::screen_io::{InputArgs, Output, SkipReport, StreamProgress};
use crate::data::{LoadOptions, TaskType, featurize_rows};
use crate::features::FeatureSet;

/// Arguments of `graphsam featurize`.
#[derive(Debug, Args)]
pub struct FeaturizeArgs {
    /// The molecules to read and how.
    #[command(flatten)]
    pub input: InputArgs,
    /// Feature set: compt (115 atom / 13 bond), chemprop (133 / 14) or grover (151 / 14).
    #[arg(long, default_value = "compt")]
    pub features: FeatureSet,
    /// Write the features as JSON lines (one object per valid molecule) to
    /// this file (gzip-compressed when the name ends in .gz).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One featurized molecule as written by `--out` (JSON lines).
#[derive(Serialize)]
struct FeaturizedRow<'a> {
    line: u64,
    smiles: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    n_atoms: usize,
    atom_dim: usize,
    bond_dim: usize,
    atom_features: &'a [f32],
    bonds: &'a [[u32; 2]],
    bond_features: &'a [f32],
    #[serde(skip_serializing_if = "Option::is_none")]
    distances: Option<&'a [f32]>,
}

/// Runs the command: the input is streamed chunk by chunk (the same reader
/// and row checks as `predict`), so memory does not grow with it.
pub fn run(args: FeaturizeArgs) -> Result<()> {
    let mut source = args.input.open()?;
    let options = LoadOptions {
        features: Some(args.features),
        atom_limit: None,
        scaffolds: false,
    };
    let mut out = args
        .out
        .as_deref()
        .map(|p| Output::create(Some(p)))
        .transpose()?;
    let mut skips = SkipReport::new(args.input.errors.as_deref())?;
    let mut progress = StreamProgress::new(&source, args.input.quiet);
    let started = Instant::now();
    let (mut molecules, mut skipped) = (0u64, 0u64);
    let outcome = (|| -> Result<()> {
        loop {
            let rows = source.next_chunk(args.input.chunk_size as usize)?;
            if rows.is_empty() {
                return Ok(());
            }
            let chunk = featurize_rows(rows, &options, TaskType::Regression, &[]);
            let m = &chunk.molecules;
            if let Some(out) = &mut out {
                for (i, g) in m.graphs.iter().enumerate() {
                    let row = FeaturizedRow {
                        line: m.source_lines[i],
                        smiles: &m.smiles[i],
                        name: chunk.names[i].as_deref(),
                        n_atoms: g.n_atoms,
                        atom_dim: args.features.atom_dim(),
                        bond_dim: args.features.bond_dim(),
                        atom_features: &g.atom_features,
                        bonds: &g.bonds,
                        bond_features: &g.bond_features,
                        distances: g.distances.as_deref(),
                    };
                    serde_json::to_writer(&mut *out, &row)?;
                    out.write_all(b"\n")?;
                }
            }
            molecules += m.len() as u64;
            skipped += m.skipped.len() as u64;
            skips.add(&m.skipped, &progress.bar)?;
            progress.advance(m.len() as u64, source.bytes_read());
        }
    })();
    // Features written before an input error are kept: finish the file first.
    let written = out.map(Output::finish).transpose();
    skips.finish()?;
    outcome?;
    written?;
    progress.bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}: {} molecules featurized with {} features ({} atom / {} bond dims) in {:.2} s ({:.0} molecules/s), {} rows skipped",
        args.input.input.display(),
        molecules,
        args.features.name(),
        args.features.atom_dim(),
        args.features.bond_dim(),
        seconds,
        (molecules + skipped) as f64 / seconds.max(1e-9),
        skipped,
    );
    if let Some(out) = &args.out {
        println!("features written to {}", out.display());
    }
    Ok(())
}
