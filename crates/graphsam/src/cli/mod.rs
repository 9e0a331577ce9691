//! The `graphsam` command line: one file per subcommand. The binary is a
//! thin wrapper over [`run_from`], and so is the Python package's `graphsam`
//! command; all work happens in the library stages.

pub mod bench;
pub mod compare;
pub mod dataset_args;
pub mod datasets;
pub mod device_args;
pub mod embed;
pub mod evaluate;
pub mod featurize;
pub mod predict;
pub mod progress;
pub mod screen_bench;
pub mod screen_io;
pub mod sharpness;
pub mod split;
pub mod train;
pub mod train_args;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Train molecular property predictors with sharpness-aware optimizers (GraphSAM, SAM, Adam, ...).
#[derive(Debug, Parser)]
#[command(name = "graphsam", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
    /// The arguments after the program name, as given: child processes
    /// (`compare --jobs`) repeat them. Not a flag; [`try_run_from`] fills it.
    #[arg(skip)]
    pub arguments: Vec<std::ffi::OsString>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Featurize a CSV of SMILES and report invalid rows.
    Featurize(featurize::FeaturizeArgs),
    /// List the registry datasets and whether each is available locally.
    Datasets(datasets::DatasetsArgs),
    /// Show how a dataset splits (sizes, scaffold groups).
    Split(split::SplitArgs),
    /// Train a model (one run per seed) and write its run record.
    Train(train::TrainArgs),
    /// Predict properties of new molecules with a trained model.
    Predict(predict::PredictArgs),
    /// Write the learned molecule vectors (the readout the task head reads) of a trained model.
    Embed(embed::EmbedArgs),
    /// Score a trained model on a dataset or a part of its split.
    Evaluate(evaluate::EvaluateArgs),
    /// Time Adam, SAM and GraphSAM steps on the same model and batches.
    Bench(bench::BenchArgs),
    /// Time `predict` end to end (molecules/s, peak RSS) on screening libraries of several sizes.
    ScreenBench(screen_bench::ScreenBenchArgs),
    /// Compare optimizers over datasets and seeds (resumable, parallel, shardable) and tabulate them.
    Compare(compare::CompareArgs),
    /// Measure how sharp a trained run's minimum is: ε-sharpness and the top Hessian eigenvalue.
    Sharpness(sharpness::SharpnessArgs),
    /// Plot a trained run's loss along filter-normalised random directions (1-D curve or 2-D map).
    Landscape(sharpness::LandscapeArgs),
}

/// How child processes run the command line again (set by the Python
/// package); unset: this executable.
static SELF_PROGRAM: std::sync::OnceLock<Vec<std::ffi::OsString>> = std::sync::OnceLock::new();

/// Sets the program and leading arguments with which `compare --jobs` and
/// `screen-bench` start child `graphsam` processes, where this process is
/// not the `graphsam` executable (the Python package: its interpreter with
/// `-m graphsam._cli`). The first call wins.
pub fn set_self_program(program: Vec<std::ffi::OsString>) {
    let _ = SELF_PROGRAM.set(program);
}

/// The program (and leading arguments) that runs the command line again:
/// [`set_self_program`]'s, else this executable.
pub fn self_program() -> Result<Vec<std::ffi::OsString>> {
    if let Some(program) = SELF_PROGRAM.get().filter(|p| !p.is_empty()) {
        return Ok(program.clone());
    }
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("finding the graphsam executable: {e}"))?;
    Ok(vec![exe.into_os_string()])
}

/// Why a command line did not run to success.
#[derive(Debug)]
pub enum Failure {
    /// The flags did not parse, or asked for `--help` / `--version` (exit
    /// code 0): clap's message to print.
    Usage(clap::Error),
    /// The command ran and failed.
    Command(anyhow::Error),
}

/// Parses `args` (the program name first) as the `graphsam` command line and
/// runs the command.
pub fn try_run_from<I, T>(args: I) -> std::result::Result<(), Failure>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let mut cli = Cli::try_parse_from(&args).map_err(Failure::Usage)?;
    cli.arguments = args.into_iter().skip(1).collect();
    run(cli).map_err(Failure::Command)
}

/// Parses `args` (the program name first) as the `graphsam` command line,
/// runs the command and returns the process exit status: 0 on success, 1
/// when the command failed (its error printed to stderr), clap's status
/// for `--help`, `--version` and bad flags (the text printed).
pub fn run_from<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match try_run_from(args) {
        Ok(()) => 0,
        Err(Failure::Usage(error)) => {
            // Help and version go to stdout with status 0, mistakes to stderr.
            let _ = error.print();
            error.exit_code()
        }
        Err(Failure::Command(error)) => {
            eprintln!("error: {error:#}");
            1
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Featurize(args) => featurize::run(args),
        Command::Datasets(args) => datasets::run(args),
        Command::Split(args) => split::run(args),
        Command::Train(args) => train::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Compare(args) => compare::run(args, &cli.arguments),
        Command::ScreenBench(args) => screen_bench::run(args),
        Command::Sharpness(args) => sharpness::run_sharpness(args),
        Command::Landscape(args) => sharpness::run_landscape(args),
    }
}

/// Prints the rows a dataset load skipped, with their file lines.
pub fn report_skipped(dataset: &crate::data::MoleculeDataset) {
    if dataset.skipped.is_empty() {
        return;
    }
    eprintln!("{}: {} rows skipped:", dataset.name, dataset.skipped.len());
    for row in dataset.skipped.iter().take(20) {
        eprintln!("  line {}: {:?}: {}", row.line, row.smiles, row.reason);
    }
    if dataset.skipped.len() > 20 {
        eprintln!("  ... and {} more", dataset.skipped.len() - 20);
    }
}
