//! `graphsam sharpness` and `graphsam landscape`: how flat is the minimum a
//! trained run found — its ε-sharpness and top Hessian eigenvalue, and its
//! loss along filter-normalised random directions, several runs side by side.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::dataset_args::DatasetArgs;
use super::device_args::DeviceArgs;
use crate::data::{LoadOptions, MoleculeDataset};
use crate::train::record::write_json;
use crate::train::sharpness::{
    Landscape, LandscapeSettings, RunFolder, RunSharpness, SharpnessSettings, SplitPart,
    loss_landscape, measure_sharpness, plot_landscapes,
};

/// The split part, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PartArg {
    /// The run's training molecules.
    Train,
    /// Its validation molecules.
    Valid,
    /// Its test molecules.
    Test,
}

impl From<PartArg> for SplitPart {
    fn from(p: PartArg) -> Self {
        match p {
            PartArg::Train => SplitPart::Train,
            PartArg::Valid => SplitPart::Valid,
            PartArg::Test => SplitPart::Test,
        }
    }
}

/// What both commands share: the runs, the data, the device.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// A trained run folder (e.g. runs/NAME/seed-0, or a cell of a compare
    /// folder); repeat for several runs.
    #[arg(long = "run", required = true)]
    pub runs: Vec<PathBuf>,
    /// The dataset CSV or registry name, when it is not where the run's
    /// config says (its columns and task are taken from the run).
    #[arg(long)]
    pub dataset: Option<String>,
    /// The split part the loss is taken over.
    #[arg(long, value_enum, default_value = "train")]
    pub part: PartArg,
    /// Use a seeded random subset of this many molecules of the part.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Seed of the random directions (and subsets).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Molecules per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Where the model runs.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Arguments of `graphsam sharpness`.
#[derive(Debug, Args)]
pub struct SharpnessArgs {
    /// The trained runs to measure and on what.
    #[command(flatten)]
    pub runs: RunsArgs,
    /// Radius ρ of the L2 ball of ε-sharpness.
    #[arg(long, default_value_t = 0.05)]
    pub rho: f64,
    /// Projected gradient-ascent steps of ε-sharpness.
    #[arg(long, default_value_t = 5)]
    pub ascent_steps: usize,
    /// At most this many power iterations (two gradient passes each).
    #[arg(long, default_value_t = 20)]
    pub power_iterations: usize,
    /// Stop the power iteration when successive estimates differ by at most this fraction.
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f64,
    /// Finite-difference step of the Hessian-vector products, relative to max(1, ‖w‖).
    #[arg(long, default_value_t = 1e-3)]
    pub fd_step: f64,
    /// Repeats per run (own seed each: the power iteration's start and, with
    /// --sample, the molecules), for the spread.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Write every repeat's numbers as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `graphsam landscape`.
#[derive(Debug, Args)]
pub struct LandscapeArgs {
    /// The trained runs to measure and on what.
    #[command(flatten)]
    pub runs: RunsArgs,
    /// 1: the loss along one direction (a curve); 2: over a plane (a heat map).
    #[arg(long, default_value_t = 1)]
    pub dims: usize,
    /// Grid points per axis.
    #[arg(long, default_value_t = 21)]
    pub points: usize,
    /// Each axis spans [-RANGE, RANGE] steps of the filter-normalised direction.
    #[arg(long, default_value_t = 1.0)]
    pub range: f64,
    /// Output prefix: writes PREFIX.svg, PREFIX.csv and PREFIX.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Opens every run and loads each distinct dataset once.
fn open_runs(args: &RunsArgs) -> Result<(Vec<RunFolder>, HashMap<String, MoleculeDataset>)> {
    let mut runs = Vec::new();
    let mut datasets: HashMap<String, MoleculeDataset> = HashMap::new();
    for dir in &args.runs {
        let run = RunFolder::open(dir)?;
        let key = dataset_key(args, &run);
        if !datasets.contains_key(&key) {
            let data = DatasetArgs {
                dataset: key.clone(),
                smiles_column: Some(run.config.smiles_column.clone()),
                targets: run.config.targets.clone(),
                task: Some(run.config.task_type),
            };
            let options = LoadOptions {
                features: Some(run.card.model.feature_set()),
                atom_limit: run.card.atom_limit,
                scaffolds: false,
            };
            let dataset = data
                .load(&options)
                .with_context(|| format!("loading the data of {}", dir.display()))?;
            datasets.insert(key.clone(), dataset);
        }
        runs.push(run);
    }
    Ok((runs, datasets))
}

/// The dataset a run is measured on: `--dataset`, else the file it was trained on.
fn dataset_key(args: &RunsArgs, run: &RunFolder) -> String {
    args.dataset
        .clone()
        .unwrap_or_else(|| run.config.dataset_path.clone())
}

/// Runs `graphsam sharpness`.
pub fn run_sharpness(args: SharpnessArgs) -> Result<()> {
    let settings = SharpnessSettings {
        part: args.runs.part.into(),
        sample: args.runs.sample,
        repeats: args.repeats,
        seed: args.runs.seed,
        rho: args.rho,
        ascent_steps: args.ascent_steps,
        power_iterations: args.power_iterations,
        tolerance: args.tolerance,
        relative_step: args.fd_step,
        batch_size: args.runs.batch_size,
    };
    settings.validate()?;
    let (runs, datasets) = open_runs(&args.runs)?;
    let device = args.runs.device.training_device()?;
    let mut results: Vec<RunSharpness> = Vec::new();
    for run in &runs {
        let dataset = &datasets[&dataset_key(&args.runs, run)];
        let quiet = args.runs.quiet;
        let name = run.dir.display().to_string();
        let result = measure_sharpness(run, dataset, &settings, &device, |line| {
            if !quiet {
                eprintln!("{name}: {line}");
            }
        })?;
        results.push(result);
    }
    print!("{}", sharpness_table(&results, &settings));
    if let Some(out) = &args.out {
        write_json(out, &results)?;
        println!("numbers of every repeat in {}", out.display());
    }
    Ok(())
}

/// The table `graphsam sharpness` prints.
fn sharpness_table(results: &[RunSharpness], settings: &SharpnessSettings) -> String {
    let mut out = String::new();
    let width = results
        .iter()
        .map(|r| r.run.len())
        .max()
        .unwrap_or(3)
        .max(3);
    out.push_str(&format!(
        "{:<width$}  {:<9}  {:>9}  {:>21}  {:>19}  {:>6}\n",
        "run",
        "optimizer",
        format!("{} loss", settings.part.name()),
        format!("ε-sharpness (ρ={})", settings.rho),
        "top eigenvalue",
        "passes"
    ));
    for r in results {
        let converged = r.repeats.iter().all(|x| x.converged);
        out.push_str(&format!(
            "{:<width$}  {:<9}  {:>9.4}  {:>21}  {:>19}  {:>6}\n",
            r.run,
            r.optimizer,
            r.loss.mean,
            format!(
                "{:.4} ± {:.4}",
                r.epsilon_sharpness.mean, r.epsilon_sharpness.std
            ),
            format!(
                "{:.3} ± {:.3}{}",
                r.top_eigenvalue.mean,
                r.top_eigenvalue.std,
                if converged { "" } else { "*" }
            ),
            r.repeats.iter().map(|x| x.passes).sum::<u64>(),
        ));
    }
    let repeats = settings.repeats;
    out.push_str(&format!(
        "mean ± sample std over {repeats} repeat(s){}; ",
        if settings.sample.is_some() {
            " (each its own molecules and start vector)"
        } else {
            " (whole part: ε-sharpness is deterministic, the eigenvalue's start vector varies)"
        }
    ));
    out.push_str(
        "* = the power iteration stopped at --power-iterations before meeting --tolerance\n",
    );
    out
}

/// Runs `graphsam landscape`.
pub fn run_landscape(args: LandscapeArgs) -> Result<()> {
    let settings = LandscapeSettings {
        part: args.runs.part.into(),
        sample: args.runs.sample,
        dims: args.dims,
        points: args.points,
        range: args.range,
        seed: args.runs.seed,
        batch_size: args.runs.batch_size,
    };
    settings.validate()?;
    let (runs, datasets) = open_runs(&args.runs)?;
    let device = args.runs.device.training_device()?;
    let mut landscapes: Vec<Landscape> = Vec::new();
    for run in &runs {
        let dataset = &datasets[&dataset_key(&args.runs, run)];
        let quiet = args.runs.quiet;
        let name = run.dir.display().to_string();
        let mut landscape = loss_landscape(run, dataset, &settings, &device, |done, total| {
            if !quiet && (done == total || done % 10 == 0) {
                eprintln!("{name}: {done}/{total} grid points");
            }
        })?;
        if runs.len() > 1 && landscapes.iter().any(|l| l.label == landscape.label) {
            landscape.label = format!("{} ({})", landscape.label, name);
        }
        landscapes.push(landscape);
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let svg = with_extension(&args.out, "svg");
    let csv = with_extension(&args.out, "csv");
    let json = with_extension(&args.out, "json");
    plot_landscapes(&svg, &landscapes, args.dims, settings.part.name())?;
    write_landscape_csv(&csv, &landscapes, args.dims)?;
    write_json(
        &json,
        &serde_json::json!({ "settings": settings, "landscapes": landscapes }),
    )?;
    for l in &landscapes {
        let centre = l.loss[l.loss.len() / 2];
        let (lo, hi) = l
            .loss
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        println!(
            "{}: {} loss {:.4} at the weights, {:.4} to {:.4} over the grid ({} molecules)",
            l.label,
            settings.part.name(),
            centre,
            lo,
            hi,
            l.molecules
        );
    }
    println!(
        "wrote {}, {} and {}",
        svg.display(),
        csv.display(),
        json.display()
    );
    Ok(())
}

/// `prefix.ext`, keeping any dots already in the prefix's name.
fn with_extension(prefix: &Path, ext: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_os_string();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn write_landscape_csv(path: &Path, landscapes: &[Landscape], dims: usize) -> Result<()> {
    let mut out = Vec::new();
    writeln!(out, "run,label,alpha,beta,loss")?;
    for l in landscapes {
        let n = l.axis.len();
        for (k, v) in l.loss.iter().enumerate() {
            let alpha = l.axis[k % n];
            let beta = if dims == 2 { l.axis[k / n] } else { 0.0 };
            writeln!(
                out,
                "{},{},{alpha},{beta},{v}",
                csv_field(&l.run),
                csv_field(&l.label)
            )?;
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
