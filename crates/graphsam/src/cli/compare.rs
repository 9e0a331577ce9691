//! `graphsam compare`: train every (dataset, optimizer, seed) cell of a grid
//! with identical settings apart from the optimizer, then tabulate test
//! metric and cost per optimizer. Cells run in this process, in `--jobs`
//! child processes, or as one `--shard` of the grid; `--merge` only
//! assembles the table from finished cells.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::dataset_args::DatasetArgs;
use super::device_args::DeviceArgs;
use super::progress::EpochProgress;
use super::train::load_options;
use super::train_args::{
    FLAG_FIELDS, LoopArgs, ModelArgs, OptimizerArgs, ScheduleArgs, flag_scope,
};
use crate::data::{LoadOptions, MoleculeDataset, Registry};
use crate::train::compare::{
    Cell, CellEvent, Comparison, GRID_FILE, Grid, Shard, check_finished_config, collect_summaries,
    compare, run_in_processes,
};
use crate::train::record::{files, read_json, write_json};
use crate::train::{RunConfig, run_seed};

/// Arguments of `graphsam compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Registry datasets, comma-separated (e.g. bbbp,esol).
    #[arg(long, value_delimiter = ',')]
    pub datasets: Vec<String>,
    /// Optimizers, comma-separated; each gets the same splits, seeds, batches, schedule and epochs.
    #[arg(long, value_delimiter = ',', default_values_t = ["adam".to_string(), "sam".to_string(), "graphsam".to_string()])]
    pub optimizers: Vec<String>,
    /// Seeds per dataset and optimizer (0..N).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// The backbone and its size.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The optimizer and its hyperparameters.
    #[command(flatten)]
    pub optimizer_flags: OptimizerArgs,
    /// The learning-rate schedule.
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Epochs, batches, seeds and early stopping.
    #[command(flatten)]
    pub training: LoopArgs,
    /// Comparison folder; cells go to <out>/<dataset>/<optimizer>/seed-<k>/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run cells in N parallel child processes, each with a fair share of the cores.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Run only slice INDEX/COUNT of the grid, 0-based (0/8 … 7/8); cells are dealt round-robin.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// No training: build the table from the finished cells under these folders.
    #[arg(long, num_args = 1.., conflicts_with_all = ["jobs", "shard"])]
    pub merge: Vec<PathBuf>,
    /// Internal: run the single cell dataset/optimizer/seed (used by --jobs).
    #[arg(long, hide = true)]
    pub cell: Option<Cell>,
    /// Where the model runs.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// No progress bars; one line per epoch.
    #[arg(long)]
    pub quiet: bool,
}

/// What a comparison folder records about how it was started (`compare.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct GridRecord {
    grid: Grid,
}

/// The flags of `flags` that apply to optimizer `name`: a comparison passes
/// `--rho` to the SAM family and leaves Adam alone.
fn flags_for(flags: &OptimizerArgs, name: &str) -> OptimizerArgs {
    FLAG_FIELDS
        .iter()
        .filter(|(flag, _)| !flag_scope(flag).contains(&name))
        .fold(flags.clone(), |f, (flag, _)| f.without(flag))
}

/// Refuses an optimizer flag that none of the compared optimizers uses.
fn check_flags_used(flags: &OptimizerArgs, optimizers: &[String]) -> Result<()> {
    for (flag, is_set) in flags.given() {
        let scope = flag_scope(flag);
        if is_set && !optimizers.iter().any(|o| scope.contains(&o.as_str())) {
            bail!(
                "--{flag} applies to none of {} (only to {})",
                optimizers.join(", "),
                scope.join(", ")
            );
        }
    }
    Ok(())
}

/// Runs the command; `arguments` (the command line after the program name)
/// are what each `--jobs` child repeats for its cell.
pub fn run(args: CompareArgs, arguments: &[std::ffi::OsString]) -> Result<()> {
    if !args.merge.is_empty() {
        return merge(&args.merge, args.out.as_deref());
    }
    let out = args
        .out
        .clone()
        .context("name the comparison folder with --out (or use --merge)")?;
    let grid = grid(&args)?;
    if let Some(cell) = &args.cell {
        // A child of --jobs: one cell, no table.
        if !grid.cells().contains(cell) {
            bail!("cell {cell} is not in the grid of this command line");
        }
        return run_cells(&args, &out, std::slice::from_ref(cell));
    }
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    // A bad --device, or a GPU this machine lacks, stops the command here
    // rather than failing in every child.
    if !args.device.backend()?.is_cpu() {
        args.device.open()?;
    }
    let record_path = out.join(GRID_FILE);
    let recorded = if record_path.exists() {
        let old: GridRecord = read_json(&record_path)?;
        old.grid.union(&grid)
    } else {
        grid.clone()
    };
    write_json(
        &record_path,
        &GridRecord {
            grid: recorded.clone(),
        },
    )?;
    let cells = match args.shard {
        Some(shard) => shard.select(&grid.cells()),
        None => grid.cells(),
    };
    verify_finished(&args, &out, &cells)?;
    let pending: Vec<Cell> = cells
        .iter()
        .filter(|c| !c.dir(&out).join(files::SUMMARY).exists())
        .cloned()
        .collect();
    eprintln!(
        "compare: {} cells{}, {} already finished, {} to run -> {}",
        cells.len(),
        args.shard.map_or(String::new(), |s| format!(
            " in shard {}/{}",
            s.index, s.count
        )),
        cells.len() - pending.len(),
        pending.len(),
        out.display()
    );
    let outcome = if args.jobs > 1 && pending.len() > 1 {
        // Each child runs this command line for one cell.
        run_in_processes(
            &super::self_program()?,
            arguments,
            &out,
            &pending,
            args.jobs,
            &mut |event| match event {
                CellEvent::Started {
                    cells,
                    jobs,
                    threads,
                } => {
                    eprintln!("running {cells} cells in {jobs} processes, {threads} threads each")
                }
                CellEvent::Finished { cell, done, total } => {
                    eprintln!("cell {cell}: finished ({done}/{total})")
                }
                CellEvent::Failed {
                    cell,
                    log,
                    log_tail,
                } => match log {
                    Some(log) => eprintln!(
                        "cell {cell} failed; last lines of {}:\n{log_tail}",
                        log.display()
                    ),
                    None => eprintln!("cell {cell} failed: {log_tail}"),
                },
            },
        )
    } else {
        run_cells(&args, &out, &pending)
    };
    let comparison = compare(&collect_summaries(&out)?, Some(&recorded));
    comparison.write(&out)?;
    print_table(&comparison, &out);
    outcome
}

/// The grid the flags describe, with optimizer names and flags checked.
fn grid(args: &CompareArgs) -> Result<Grid> {
    if args.datasets.is_empty() {
        bail!("name the datasets with --datasets, e.g. --datasets bbbp,esol");
    }
    if args.optimizers.is_empty() {
        bail!("name the optimizers with --optimizers, e.g. --optimizers adam,sam,graphsam");
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let registry = Registry::moleculenet();
    let mut datasets = Vec::new();
    for name in &args.datasets {
        let canonical = registry.get(name)?.name.clone();
        if !datasets.contains(&canonical) {
            datasets.push(canonical);
        }
    }
    let mut optimizers = Vec::new();
    for name in &args.optimizers {
        let canonical = flags_for(&args.optimizer_flags, name)
            .config(name)
            .with_context(|| format!("optimizer `{name}`"))?
            .name()
            .to_string();
        if !optimizers.contains(&canonical) {
            optimizers.push(canonical);
        }
    }
    check_flags_used(&args.optimizer_flags, &optimizers)?;
    Ok(Grid {
        datasets,
        optimizers,
        seeds: args.seeds,
    })
}

/// Datasets loaded once per process, by registry name, with their SMILES column.
struct Datasets {
    options: LoadOptions,
    loaded: HashMap<String, (MoleculeDataset, String)>,
}

impl Datasets {
    fn new(args: &CompareArgs) -> Self {
        Datasets {
            options: load_options(args.model.model, args.training.atom_limit),
            loaded: HashMap::new(),
        }
    }

    fn get(&mut self, name: &str) -> Result<&(MoleculeDataset, String)> {
        if !self.loaded.contains_key(name) {
            let data = DatasetArgs {
                dataset: name.to_string(),
                smiles_column: None,
                targets: vec![],
                task: None,
            };
            let (spec, _) = data.spec()?;
            let dataset = data.load(&self.options)?;
            super::report_skipped(&dataset);
            self.loaded
                .insert(name.to_string(), (dataset, spec.smiles_column));
        }
        Ok(&self.loaded[name])
    }
}

/// The run configuration of one cell: the same for every optimizer except the optimizer.
fn cell_config(args: &CompareArgs, cell: &Cell, datasets: &mut Datasets) -> Result<RunConfig> {
    let template = args.training.template(
        &args.model,
        &args.schedule,
        datasets.options.atom_limit,
        args.device.name(),
    )?;
    let (dataset, smiles_column) = datasets.get(&cell.dataset)?;
    let metric = Registry::moleculenet().get(&cell.dataset)?.metric;
    let optimizer = flags_for(&args.optimizer_flags, &cell.optimizer).config(&cell.optimizer)?;
    template
        .config(
            dataset,
            &cell.dataset,
            smiles_column,
            cell.seed,
            optimizer,
            metric,
        )
        .with_context(|| format!("--hidden/--layers on {}", cell.dataset))
}

/// Refuses to go on when a finished cell was trained with other settings
/// than this command line's (its summary would be mixed into the table).
fn verify_finished(args: &CompareArgs, out: &Path, cells: &[Cell]) -> Result<()> {
    let mut datasets = Datasets::new(args);
    let mut differing = Vec::new();
    for cell in cells
        .iter()
        .filter(|c| c.dir(out).join(files::SUMMARY).exists())
    {
        let config = cell_config(args, cell, &mut datasets)?;
        if let Err(e) = check_finished_config(&cell.dir(out), &config) {
            differing.push(format!("{cell}: {e:#}"));
        }
    }
    if !differing.is_empty() {
        bail!(
            "{} finished cell(s) were trained with other settings than this command line \
             (rerun with the original flags):\n  {}",
            differing.len(),
            differing.join("\n  ")
        );
    }
    Ok(())
}

/// Runs cells one after another in this process; a failed cell is reported
/// and the rest still run.
fn run_cells(args: &CompareArgs, out: &Path, cells: &[Cell]) -> Result<()> {
    let device = args.device.training_device()?;
    let mut datasets = Datasets::new(args);
    let mut failed = Vec::new();
    for cell in cells {
        let result = (|| -> Result<()> {
            let config = cell_config(args, cell, &mut datasets)?;
            let (dataset, _) = datasets.get(&cell.dataset)?;
            let dir = cell.dir(out);
            check_finished_config(&dir, &config)?;
            eprintln!(
                "cell {cell}: {} on {} -> {}",
                config.model.name(),
                dataset.name,
                dir.display()
            );
            let mut progress = EpochProgress::new(args.quiet);
            let s = run_seed(dataset, &config, &device, &dir, &mut progress)?;
            println!(
                "cell {cell}: test {} = {:.4} (best epoch {}, {:.2} s/epoch)",
                s.metric.name(),
                s.test.value,
                s.best_epoch,
                s.seconds_per_epoch
            );
            Ok(())
        })();
        if let Err(e) = result {
            if e.downcast_ref::<crate::train::Interrupted>().is_some() {
                // A stop request ends the grid, not just this cell.
                return Err(e.context(format!("cell {cell}")));
            }
            eprintln!("cell {cell} failed: {e:#}");
            failed.push(cell.to_string());
        }
    }
    if !failed.is_empty() {
        bail!("{} cell(s) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// `--merge`: the table from whatever cells exist under `folders`, written
/// to `out` (default: the first folder).
fn merge(folders: &[PathBuf], out: Option<&Path>) -> Result<()> {
    let mut summaries = Vec::new();
    let mut grid: Option<Grid> = None;
    for folder in folders {
        if !folder.is_dir() {
            bail!("--merge {}: not a folder", folder.display());
        }
        summaries.extend(collect_summaries(folder)?);
        let record = folder.join(GRID_FILE);
        if record.exists() {
            let g = read_json::<GridRecord>(&record)?.grid;
            grid = Some(match grid {
                Some(old) => old.union(&g),
                None => g,
            });
        }
    }
    if summaries.is_empty() {
        bail!(
            "no finished cells (seed-*/summary.json) under {}",
            folder_list(folders)
        );
    }
    let comparison = compare(&summaries, grid.as_ref());
    let out = out.unwrap_or(&folders[0]);
    comparison.write(out)?;
    print_table(&comparison, out);
    Ok(())
}

fn folder_list(folders: &[PathBuf]) -> String {
    folders
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_table(comparison: &Comparison, out: &Path) {
    print!("{}", comparison.markdown());
    if comparison.missing.is_empty() {
        println!(
            "all {} cells finished; table in {}",
            comparison.grid.cells().len(),
            out.display()
        );
    } else {
        println!(
            "{} of {} cells missing; table so far in {}",
            comparison.missing.len(),
            comparison.grid.cells().len(),
            out.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn flags(line: &[&str]) -> OptimizerArgs {
        #[derive(Parser)]
        struct Line {
            #[command(flatten)]
            optimizer: OptimizerArgs,
        }
        let mut argv = vec!["compare"];
        argv.extend_from_slice(line);
        Line::try_parse_from(argv).unwrap().optimizer
    }

    #[test]
    fn each_optimizer_gets_only_its_own_flags() {
        let given = flags(&["--rho", "0.1", "--delta", "0.8", "--sam-prob", "0.3"]);
        let set = |f: &OptimizerArgs| -> Vec<&str> {
            f.given()
                .iter()
                .filter(|(_, s)| *s)
                .map(|(n, _)| *n)
                .collect()
        };
        assert!(set(&flags_for(&given, "adam")).is_empty());
        assert_eq!(set(&flags_for(&given, "sam")), ["rho"]);
        assert_eq!(set(&flags_for(&given, "ae-sam")), ["rho", "delta"]);
        assert_eq!(set(&flags_for(&given, "rst")), ["rho", "sam-prob"]);
        // Every cell's flags build a valid configuration.
        for name in graphsam_optim::OPTIMIZER_NAMES {
            flags_for(&given, name).config(name).unwrap();
        }
    }

    #[test]
    fn a_flag_no_compared_optimizer_uses_is_refused() {
        let given = flags(&["--lambda1", "-2"]);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = check_flags_used(&given, &names(&["adam", "rst"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--lambda1 applies to none of adam, rst (only to ae-sam)"
        );
        check_flags_used(&given, &names(&["adam", "ae-sam"])).unwrap();
    }
}
