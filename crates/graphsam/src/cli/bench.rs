//! `graphsam bench`: per-step cost of each optimizer on the same model and
//! the same batches, in one process, interleaved, as ratios to Adam.

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use burn::optim::GradientsParams;
use burn::tensor::Device;
use clap::Args;

use graphsam_optim::{OptimizerConfig, SharpnessOptimizer};

use super::dataset_args::DatasetArgs;
use super::device_args::DeviceArgs;
use super::train::{load_options, model_spec};
use super::train_args::{ModelArgs, OptimizerArgs};
use crate::data::{BatchLayout, MoleculeDataset, TargetScaler, TaskType, shuffled_batches};
use crate::model::PropertyModel;

/// Arguments of `graphsam bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimizers to compare: adam, sam, graphsam, sam-k, looksam, ae-sam, rst
    /// (adam, if named, is the reference).
    #[arg(long, value_delimiter = ',', default_value = "adam,sam,graphsam")]
    pub optimizers: Vec<String>,
    #[command(flatten)]
    pub optimizer_flags: OptimizerArgs,
    /// Timed steps per optimizer (after one warm-up step each).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Molecules per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Timings of one optimizer.
struct Timing {
    name: String,
    seconds: Vec<f64>,
    passes: u64,
    molecules: usize,
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
    let dataset = args.data.load(&load_options(args.model.model, None))?;
    let spec = model_spec(&args.model, &dataset)?;
    let device = args.device.training_device()?;
    let plain = device.clone().inner();
    let scaler = (dataset.task_type == TaskType::Regression)
        .then(|| TargetScaler::fit(&dataset, &(0..dataset.len()).collect::<Vec<_>>()));
    let all: Vec<usize> = (0..dataset.len()).collect();
    let batches: Vec<Vec<usize>> = shuffled_batches(&all, args.batch_size, 0, 0)
        .into_iter()
        .filter(|b| b.len() == args.batch_size)
        .take(args.steps + 1)
        .collect();
    if batches.len() < args.steps + 1 {
        bail!(
            "{} has too few molecules for {} batches of {}",
            dataset.name,
            args.steps + 1,
            args.batch_size
        );
    }
    println!(
        "bench: {} on {} ({} params), batch {}, {} timed steps per optimizer after 1 warm-up, device {}",
        spec.name(),
        dataset.name,
        crate::with_model!(&spec, &plain, 0, |m| burn::module::Module::num_params(&m)),
        args.batch_size,
        args.steps,
        args.device.name()
    );
    let timings = crate::with_model!(&spec, &plain, 0, |model| {
        time_steps(
            model,
            &dataset,
            scaler.as_ref(),
            &batches,
            &configs,
            &device,
        )
    })?;
    let reference = timings
        .iter()
        .find(|t| t.name == "adam")
        .map(|t| mean(&t.seconds))
        .unwrap_or_else(|| mean(&timings[0].seconds));
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>10} {:>12}",
        "optimizer", "s/step", "±", "molecules/s", "ratio", "passes/step"
    );
    for t in &timings {
        let m = mean(&t.seconds);
        println!(
            "{:<10} {:>10.4} {:>10.4} {:>12.1} {:>10.2} {:>12.2}",
            t.name,
            m,
            std_dev(&t.seconds),
            t.molecules as f64 / t.seconds.iter().sum::<f64>(),
            m / reference,
            t.passes as f64 / t.seconds.len() as f64
        );
    }
    if let Some(peak) = peak_rss_mib() {
        println!("peak RSS of the process: {peak:.0} MiB");
    }
    println!(
        "(GraphSAM's anchor step, one extra pass per epoch, is the warm-up step here; per epoch of S steps it adds 1/S passes.)"
    );
    Ok(())
}

fn time_steps<M: PropertyModel>(
    model: M,
    dataset: &MoleculeDataset,
    scaler: Option<&TargetScaler>,
    batches: &[Vec<usize>],
    configs: &[OptimizerConfig],
    device: &Device,
) -> Result<Vec<Timing>> {
    let model = model.to_device(device).train();
    let mut runs: Vec<(SharpnessOptimizer<M>, M, Timing)> = configs
        .iter()
        .map(|c| {
            let mut opt = c.init::<M>().map_err(|e| anyhow!("{e}"))?;
            opt.start_epoch(0);
            // AE-SAM's and RST's schedules span the benchmark's steps.
            opt.set_total_steps(batches.len() as u64);
            let timing = Timing {
                name: c.name().to_string(),
                seconds: Vec::new(),
                passes: 0,
                molecules: 0,
            };
            Ok((opt, model.clone(), timing))
        })
        .collect::<Result<_>>()?;
    let inputs = batches
        .iter()
        .map(|b| M::input(&M::Batch::assemble(dataset, b, scaler)?, device))
        .collect::<Result<Vec<_>>>()?;
    let task = dataset.task_type;
    for (step, input) in inputs.iter().enumerate() {
        // Interleave the optimizers step by step so drifts in machine load hit all alike.
        for (opt, model, timing) in runs.iter_mut() {
            let before = opt.counters().forward;
            let started = Instant::now();
            let current = model.clone();
            let (next, _) = opt
                .step(1e-3, current, |m: &M| {
                    let loss = m.loss(input, task, step as u64);
                    let value: f32 = loss.clone().into_scalar();
                    Ok::<_, std::convert::Infallible>((
                        value,
                        GradientsParams::from_grads(loss.backward(), m),
                    ))
                })
                .map_err(|e| anyhow!("{}: {e}", timing.name))?;
            // A GPU runs kernels asynchronously: wait for the update to finish before timing.
            device
                .sync()
                .map_err(|e| anyhow!("{}: device error: {e:?}", timing.name))?;
            let seconds = started.elapsed().as_secs_f64();
            *model = next;
            if step > 0 {
                timing.seconds.push(seconds);
                timing.passes += opt.counters().forward - before;
                timing.molecules += batches[step].len();
            }
        }
    }
    Ok(runs.into_iter().map(|(_, _, t)| t).collect())
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn std_dev(values: &[f64]) -> f64 {
    super::train::mean_std(values).1
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
