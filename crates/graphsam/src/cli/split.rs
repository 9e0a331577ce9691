//! `graphsam split`: how a dataset splits, without training.

use anyhow::Result;
use clap::Args;

use super::dataset_args::DatasetArgs;
use crate::data::{LoadOptions, SplitKind, SplitSizes, make_split, summarize_split};

/// Arguments of `graphsam split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Which dataset, and how its CSV reads.
    #[command(flatten)]
    pub data: DatasetArgs,
    /// random, scaffold (chemprop's balanced scaffold split), scaffold-deterministic
    /// (deepchem's), or file:<path> (JSON with train/valid/test index lists).
    #[arg(long, default_value = "random")]
    pub split: SplitKind,
    /// Seed of the split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fractions train,valid,test.
    #[arg(long, value_delimiter = ',', default_values_t = [0.8, 0.1, 0.1])]
    pub sizes: Vec<f64>,
}

/// Runs the command.
pub fn run(args: SplitArgs) -> Result<()> {
    let sizes = parse_sizes(&args.sizes)?;
    let dataset = args.data.load(&LoadOptions::scaffolds_only())?;
    let split = make_split(&dataset, &args.split, sizes, args.seed)?;
    let summary = summarize_split(&dataset, &split);
    println!(
        "{}: {} valid molecules ({} rows skipped), {} split, seed {}",
        dataset.name,
        dataset.len(),
        dataset.skipped.len(),
        args.split,
        args.seed
    );
    for (k, (name, _)) in split.parts().iter().enumerate() {
        let groups = summary
            .scaffold_groups
            .map(|g| format!(", {} scaffold groups", g[k]))
            .unwrap_or_default();
        println!("  {name:<10} {:>6} molecules{groups}", summary.sizes[k]);
    }
    if let Some(shared) = summary.shared_scaffolds {
        println!("  scaffolds shared between parts: {shared}");
    }
    Ok(())
}

/// Validates `--sizes` (three fractions summing to 1).
pub fn parse_sizes(sizes: &[f64]) -> Result<SplitSizes> {
    match sizes {
        [train, valid, test] => Ok(SplitSizes::new(*train, *valid, *test)?),
        _ => anyhow::bail!(
            "--sizes needs three fractions train,valid,test (got {})",
            sizes.len()
        ),
    }
}
