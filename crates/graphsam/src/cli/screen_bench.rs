//! `graphsam screen-bench`: end-to-end `predict` throughput and peak memory
//! on screening libraries of several sizes, built by repeating the SMILES of
//! the six MoleculeNet datasets. Each size runs as its own `graphsam predict`
//! process, so its peak RSS is its own, measured by the kernel.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::data::{DatasetResolver, MoleculeSource, Registry};

/// The datasets whose SMILES make up the benchmark library.
const LIBRARY_DATASETS: [&str; 6] = ["bbbp", "clintox", "sider", "tox21", "esol", "lipophilicity"];

/// Arguments of `graphsam screen-bench`.
#[derive(Debug, Args)]
pub struct ScreenBenchArgs {
    /// Trained model (run folder or training output folder) to predict with.
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// Library sizes to time, in molecules (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub molecules: Vec<u64>,
    /// Molecules per model batch (passed to predict).
    #[arg(long, default_value_t = 32)]
    pub batch_size: u64,
    /// Input rows per chunk (passed to predict).
    #[arg(long, default_value_t = 4096)]
    pub chunk_size: u64,
    /// Folder for the library files and predictions (default: a temporary
    /// folder, removed afterwards).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// One timed `predict` run.
struct Measurement {
    molecules: u64,
    predicted: u64,
    seconds: f64,
    peak_rss_mib: f64,
}

/// Runs the command.
pub fn run(args: ScreenBenchArgs) -> Result<()> {
    if args.molecules.is_empty() || args.molecules.contains(&0) {
        bail!("--molecules needs one or more positive sizes");
    }
    let smiles = moleculenet_smiles()?;
    let temp = tempfile::tempdir()?;
    let dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!(
        "library: the {} SMILES of {} repeated; model: {}; batch {}, chunk {}",
        smiles.len(),
        LIBRARY_DATASETS.join(", "),
        args.models
            .iter()
            .map(|m| m.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        args.batch_size,
        args.chunk_size
    );
    println!(
        "{:>10} {:>10} {:>9} {:>13} {:>14}",
        "molecules", "predicted", "seconds", "molecules/s", "peak RSS MiB"
    );
    let mut results = Vec::new();
    for &n in &args.molecules {
        let library = dir.join(format!("library-{n}.smi"));
        write_library(&library, &smiles, n)?;
        let out = dir.join(format!("predictions-{n}.csv"));
        let measured = time_predict(&args, &library, &out, n)?;
        println!(
            "{:>10} {:>10} {:>9.1} {:>13.0} {:>14.0}",
            measured.molecules,
            measured.predicted,
            measured.seconds,
            measured.predicted as f64 / measured.seconds,
            measured.peak_rss_mib
        );
        std::fs::remove_file(&library).ok();
        std::fs::remove_file(&out).ok();
        results.push(measured);
    }
    if let (Some(first), Some(last)) = (results.first(), results.last())
        && results.len() > 1
    {
        println!(
            "peak RSS {} vs {} molecules: {:.2}×; throughput {:.2}×",
            last.molecules,
            first.molecules,
            last.peak_rss_mib / first.peak_rss_mib,
            (last.predicted as f64 / last.seconds) / (first.predicted as f64 / first.seconds)
        );
    }
    Ok(())
}

/// Every SMILES of the benchmark datasets, in file order.
fn moleculenet_smiles() -> Result<Vec<String>> {
    let registry = Registry::moleculenet();
    let resolver = DatasetResolver::from_env();
    let mut smiles = Vec::new();
    for name in LIBRARY_DATASETS {
        let spec = registry.get(name)?;
        let file = resolver.resolve(spec, None)?;
        let mut source = MoleculeSource::open(&file.path, &spec.smiles_column, None)?;
        loop {
            let rows = source.next_chunk(1 << 14)?;
            if rows.is_empty() {
                break;
            }
            smiles.extend(rows.into_iter().map(|r| r.smiles));
        }
    }
    Ok(smiles)
}

/// A `.smi` file of `n` lines cycling through `smiles`, each named by its index.
fn write_library(path: &Path, smiles: &[String], n: u64) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    for (i, s) in smiles.iter().cycle().take(n as usize).enumerate() {
        writeln!(out, "{s} m{i}")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `graphsam predict` on `library` as a child process and measures its
/// wall time and peak RSS.
fn time_predict(args: &ScreenBenchArgs, library: &Path, out: &Path, n: u64) -> Result<Measurement> {
    let program = super::self_program()?;
    let mut command = Command::new(&program[0]);
    command.args(&program[1..]).arg("predict");
    for model in &args.models {
        command.arg("--model").arg(model);
    }
    command
        .arg(library)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .arg("--batch-size")
        .arg(args.batch_size.to_string())
        .arg("--chunk-size")
        .arg(args.chunk_size.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let started = Instant::now();
    let child = command.spawn().context("starting graphsam predict")?;
    let (status, peak_rss_mib) = wait_with_peak_rss(child)?;
    let seconds = started.elapsed().as_secs_f64();
    if !status {
        bail!(
            "graphsam predict failed on {} (run it by hand to see why)",
            library.display()
        );
    }
    let predicted = BufReader::new(std::fs::File::open(out)?)
        .lines()
        .count()
        .saturating_sub(1) as u64;
    Ok(Measurement {
        molecules: n,
        predicted,
        seconds,
        peak_rss_mib,
    })
}

/// Waits for `child`; returns whether it succeeded and its peak resident
/// set size in MiB, as the kernel accounted it.
#[cfg(unix)]
fn wait_with_peak_rss(child: std::process::Child) -> Result<(bool, f64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; `pid` is our own
    // child, which is not waited for anywhere else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!(
            "waiting for graphsam predict: {}",
            std::io::Error::last_os_error()
        );
    }
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // Linux reports ru_maxrss in KiB.
    Ok((success, usage.ru_maxrss as f64 / 1024.0))
}

/// Without `wait4`, peak memory is not measured (reported as NaN).
#[cfg(not(unix))]
fn wait_with_peak_rss(mut child: std::process::Child) -> Result<(bool, f64)> {
    Ok((child.wait()?.success(), f64::NAN))
}
