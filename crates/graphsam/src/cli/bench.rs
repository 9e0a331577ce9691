//! `graphsam bench`: per-step cost of each optimizer on the same model and
//! the same batches, in one process, interleaved, as ratios to Adam.

use anyhow::{Result, bail};
use clap::Args;

use super::dataset_args::DatasetArgs;
use super::device_args::DeviceArgs;
use super::train::{load_options, model_spec};
use super::train_args::{ModelArgs, OptimizerArgs};
use crate::train::bench;

/// Arguments of `graphsam bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which dataset, and how its CSV reads.
    #[command(flatten)]
    pub data: DatasetArgs,
    /// The backbone and its size.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimizers to compare: adam, sam, graphsam, sam-k, looksam, ae-sam, rst
    /// (adam, if named, is the reference).
    #[arg(long, value_delimiter = ',', default_value = "adam,sam,graphsam")]
    pub optimizers: Vec<String>,
    /// The optimizer and its hyperparameters.
    #[command(flatten)]
    pub optimizer_flags: OptimizerArgs,
    /// Timed steps per optimizer (after one warm-up step each).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Molecules per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Also time this many whole training epochs of each optimizer (random
    /// 80/10/10 split, validation included), as `graphsam train` runs them,
    /// after one warm-up epoch that is not counted.
    #[arg(long, default_value_t = 0)]
    pub epochs: usize,
    /// Where the model runs.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs the command.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let configs = args
        .optimizers
        .iter()
        .map(|name| args.optimizer_flags.config(name))
        .collect::<Result<Vec<_>>>()?;
    let options = load_options(args.model.model, None);
    let dataset = args.data.load(&options)?;
    let spec = model_spec(&args.model, &dataset, options.atom_limit)?;
    super::train::note_default_settings(&spec, &dataset.name);
    let device = args.device.training_device()?;
    let plan = bench::BenchPlan {
        batch_size: args.batch_size,
        steps: args.steps,
        epochs: args.epochs,
        optimizers: configs,
    };
    let report = bench::benchmark(&spec, &dataset, &plan, &device)?;
    let costs = &report.costs;
    println!(
        "bench: {} on {} ({} params), batch {}, {} timed steps per optimizer after 1 warm-up, device {}",
        spec.name(),
        dataset.name,
        report.params,
        args.batch_size,
        args.steps,
        args.device.name()
    );
    let reference = costs
        .iter()
        .find(|c| c.name == "adam")
        .unwrap_or(&costs[0])
        .mean_seconds();
    println!(
        "{:<10} {:>9} {:>8} {:>12} {:>7} {:>12} {:>11} {:>8}",
        "optimizer", "s/step", "±", "molecules/s", "ratio", "passes/step", "GFLOP/step", "GFLOP/s"
    );
    for c in costs {
        let steps = c.seconds.len() as f64;
        println!(
            "{:<10} {:>9.4} {:>8.4} {:>12.1} {:>7.2} {:>12.2} {:>11.2} {:>8.1}",
            c.name,
            c.mean_seconds(),
            std_dev(&c.seconds),
            c.molecules as f64 / c.seconds.iter().sum::<f64>(),
            c.mean_seconds() / reference,
            c.passes as f64 / steps,
            c.flops / steps / 1e9,
            c.gflops_per_second(),
        );
    }
    println!(
        "FLOPs: the matrix products of forward+backward, 2 per multiply-add, counted from each batch's shapes (element-wise work not counted)."
    );
    if args.device.backend()?.is_cpu() {
        match bench::cpu_peak(rayon::current_num_threads()) {
            Some(peak) => {
                let best = costs
                    .iter()
                    .map(|c| c.gflops_per_second())
                    .fold(0.0, f64::max);
                println!(
                    "CPU fp32 peak {:.0} GFLOP/s = {}; the fastest optimizer reached {:.1} % of it",
                    peak.gflops,
                    peak.derivation,
                    100.0 * best / peak.gflops
                );
            }
            None => println!(
                "CPU fp32 peak: unknown (no /proc/cpuinfo clock and SIMD flags to derive it from)"
            ),
        }
    }
    let phases = &report.phases;
    let total = phases.total();
    println!(
        "where one Adam step's time goes (median of 3 instrumented steps on batch 1, {total:.4} s in all):"
    );
    for (name, seconds) in phases.named() {
        println!(
            "  {name:<26} {:>9.2} ms {:>6.1} %",
            seconds * 1e3,
            100.0 * seconds / total.max(f64::MIN_POSITIVE)
        );
    }
    if let Some(first) = report.epochs.first().and_then(|o| o.epochs.first()) {
        println!(
            "training epochs (random 80/10/10 split, {} steps of {}, validation included), one fresh model per optimizer, after a warm-up epoch:",
            first.steps, args.batch_size
        );
        println!(
            "{:<10} {:>9} {:>8} {:>10} {:>10} {:>7} {:>13} {:>7} {:>9}",
            "optimizer",
            "s/epoch",
            "±",
            "training",
            "validation",
            "ratio",
            "passes/epoch",
            "epochs",
            "warm-up s"
        );
        let reference = report
            .epochs
            .iter()
            .find(|o| o.name == "adam")
            .unwrap_or(&report.epochs[0])
            .mean_seconds();
        for timed in &report.epochs {
            let total: Vec<f64> = timed.epochs.iter().map(|e| e.train + e.valid).collect();
            let train: Vec<f64> = timed.epochs.iter().map(|e| e.train).collect();
            let valid: Vec<f64> = timed.epochs.iter().map(|e| e.valid).collect();
            let passes: Vec<f64> = timed.epochs.iter().map(|e| e.passes as f64).collect();
            let mean = |v: &[f64]| crate::train::stats::mean_std(v).0;
            let seconds = timed.mean_seconds();
            println!(
                "{:<10} {:>9.3} {:>8.3} {:>10.3} {:>10.3} {:>7.2} {:>13.1} {:>7} {:>9.3}",
                timed.name,
                seconds,
                std_dev(&total),
                mean(&train),
                mean(&valid),
                seconds / reference,
                mean(&passes),
                total.len(),
                timed.warmup.train + timed.warmup.valid,
            );
        }
    }
    if let Some(peak) = bench::peak_rss_mib() {
        println!("peak RSS of the process: {peak:.0} MiB");
    }
    println!(
        "(GraphSAM's anchor step, one extra pass per epoch, is the warm-up step here; per epoch of S steps it adds 1/S passes.)"
    );
    Ok(())
}

fn std_dev(values: &[f64]) -> f64 {
    crate::train::stats::mean_std(values).1
}
