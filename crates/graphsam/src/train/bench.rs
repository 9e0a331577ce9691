//! What a training step costs: per-optimizer step times on the same model
//! and the same batches (interleaved, in one process), the FLOPs each step
//! runs, where one step's time goes, and the CPU's fp32 peak to compare with.
//! `graphsam bench` prints these; they live here so the CLI only formats.

use std::cell::Cell;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use burn::optim::GradientsParams;
use burn::tensor::Device;

use graphsam_optim::{OptimizerConfig, SharpnessOptimizer};

use graphsam_optim::NoamLrConfig;

use super::record::EpochRecord;
use super::trainer::{TrainObserver, TrainSettings, fit};
use crate::data::{
    BatchLayout, Metric, MoleculeDataset, SplitKind, SplitSizes, TargetScaler, make_split,
};
use crate::model::PropertyModel;

/// Measured cost of one optimizer over the timed steps.
#[derive(Debug, Clone)]
pub struct OptimizerCost {
    /// Optimizer name (`adam`, `sam`, …).
    pub name: String,
    /// Wall seconds of each timed step.
    pub seconds: Vec<f64>,
    /// Forward+backward passes over the timed steps.
    pub passes: u64,
    /// Molecules over the timed steps.
    pub molecules: usize,
    /// Matrix-product FLOPs over the timed steps (each pass counted from
    /// the shapes of its batch).
    pub flops: f64,
}

impl OptimizerCost {
    /// Mean seconds per step.
    pub fn mean_seconds(&self) -> f64 {
        self.seconds.iter().sum::<f64>() / self.seconds.len().max(1) as f64
    }

    /// Achieved matrix-product GFLOP/s over the timed steps.
    pub fn gflops_per_second(&self) -> f64 {
        let total: f64 = self.seconds.iter().sum();
        if total > 0.0 {
            self.flops / total / 1e9
        } else {
            0.0
        }
    }
}

/// Steps `model` with every optimizer on the same batches: step k of every
/// optimizer runs on batch k, interleaved so drifts in machine load hit all
/// alike. The first batch is a warm-up and is not timed.
pub fn time_optimizers<M: PropertyModel>(
    model: M,
    dataset: &MoleculeDataset,
    scaler: Option<&TargetScaler>,
    batches: &[Vec<usize>],
    configs: &[OptimizerConfig],
    device: &Device,
) -> Result<Vec<OptimizerCost>> {
    let model = model.to_device(device).train();
    let mut runs: Vec<(SharpnessOptimizer<M>, M, OptimizerCost)> = configs
        .iter()
        .map(|c| {
            let mut opt = c.init::<M>().map_err(|e| anyhow!("{e}"))?;
            opt.start_epoch(0);
            // AE-SAM's and RST's schedules span the benchmark's steps.
            opt.set_total_steps(batches.len() as u64);
            let cost = OptimizerCost {
                name: c.name().to_string(),
                seconds: Vec::new(),
                passes: 0,
                molecules: 0,
                flops: 0.0,
            };
            Ok((opt, model.clone(), cost))
        })
        .collect::<Result<_>>()?;
    let task = dataset.task_type;
    for (step, molecules) in batches.iter().enumerate() {
        // Built outside the timed region and dropped after the step, so the
        // peak RSS is a training step's, not that of every batch at once.
        let input = M::input(&M::Batch::assemble(dataset, molecules, scaler)?, device)?;
        let input = &input;
        let pass_flops = model.pass_flops(input, step as u64).total();
        for (opt, model, cost) in runs.iter_mut() {
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
                .map_err(|e| anyhow!("{}: {}", cost.name, e.error))?;
            // A GPU runs kernels asynchronously: wait for the update to finish before timing.
            sync(device, &cost.name)?;
            let seconds = started.elapsed().as_secs_f64();
            *model = next;
            if step > 0 {
                let passes = opt.counters().forward - before;
                cost.seconds.push(seconds);
                cost.passes += passes;
                cost.molecules += batches[step].len();
                cost.flops += pass_flops * passes as f64;
            }
        }
    }
    Ok(runs.into_iter().map(|(_, _, c)| c).collect())
}

fn sync(device: &Device, what: &str) -> Result<()> {
    device
        .sync()
        .map_err(|e| anyhow!("{what}: device error: {e:?}"))
}

/// Where the time of one plain (Adam) training step goes, in seconds. On a
/// GPU every phase ends with a device synchronisation, so the phases add up
/// to a little more than an unsynchronised step.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepPhases {
    /// Building the host batch (features, padding, targets).
    pub batch_assembly: f64,
    /// Copying the batch to the device (host → device).
    pub upload: f64,
    /// The forward pass up to the loss.
    pub forward: f64,
    /// Reading the loss value back (device → host).
    pub loss_read: f64,
    /// The backward pass.
    pub backward: f64,
    /// Collecting the parameters' gradients from the backward result.
    pub gradient_collection: f64,
    /// The optimizer's update of the parameters (Adam's moments included).
    pub update: f64,
}

impl StepPhases {
    /// The phases with their names, in the order a step runs them.
    pub fn named(&self) -> [(&'static str, f64); 7] {
        [
            ("batch assembly", self.batch_assembly),
            ("upload (host→device)", self.upload),
            ("forward", self.forward),
            ("loss read (device→host)", self.loss_read),
            ("backward", self.backward),
            ("gradient collection", self.gradient_collection),
            ("optimizer update", self.update),
        ]
    }

    /// Sum of the phases.
    pub fn total(&self) -> f64 {
        self.named().iter().map(|(_, s)| s).sum()
    }
}

/// Runs `repeats` instrumented Adam steps on `molecules` (after one
/// untimed warm-up step) and returns the per-phase median.
pub fn step_phases<M: PropertyModel>(
    model: M,
    dataset: &MoleculeDataset,
    scaler: Option<&TargetScaler>,
    molecules: &[usize],
    device: &Device,
    repeats: usize,
) -> Result<StepPhases> {
    let mut model = model.to_device(device).train();
    let mut opt = OptimizerConfig::Adam(Default::default())
        .init::<M>()
        .map_err(|e| anyhow!("{e}"))?;
    opt.start_epoch(0);
    let task = dataset.task_type;
    let mut samples: Vec<StepPhases> = Vec::new();
    for repeat in 0..=repeats.max(1) {
        let mut phases = StepPhases::default();
        let clock = Instant::now();
        let batch = M::Batch::assemble(dataset, molecules, scaler)?;
        phases.batch_assembly = clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        let input = M::input(&batch, device)?;
        sync(device, "upload")?;
        phases.upload = clock.elapsed().as_secs_f64();
        let forward = Cell::new(0.0);
        let loss_read = Cell::new(0.0);
        let backward = Cell::new(0.0);
        let collection = Cell::new(0.0);
        let step_clock = Instant::now();
        let (next, _) = opt
            .step(1e-3, model, |m: &M| {
                let clock = Instant::now();
                let loss = m.loss(&input, task, repeat as u64);
                sync(device, "forward").map_err(|e| e.to_string())?;
                forward.set(clock.elapsed().as_secs_f64());
                let clock = Instant::now();
                let value: f32 = loss.clone().into_scalar();
                loss_read.set(clock.elapsed().as_secs_f64());
                let clock = Instant::now();
                let grads = loss.backward();
                sync(device, "backward").map_err(|e| e.to_string())?;
                backward.set(clock.elapsed().as_secs_f64());
                let clock = Instant::now();
                let grads = GradientsParams::from_grads(grads, m);
                collection.set(clock.elapsed().as_secs_f64());
                Ok::<_, String>((value, grads))
            })
            .map_err(|e| anyhow!("instrumented step: {}", e.error))?;
        sync(device, "update")?;
        let step = step_clock.elapsed().as_secs_f64();
        model = next;
        phases.forward = forward.get();
        phases.loss_read = loss_read.get();
        phases.backward = backward.get();
        phases.gradient_collection = collection.get();
        phases.update = (step
            - phases.forward
            - phases.loss_read
            - phases.backward
            - phases.gradient_collection)
            .max(0.0);
        if repeat > 0 {
            samples.push(phases);
        }
    }
    let median = |pick: fn(&StepPhases) -> f64| {
        let mut values: Vec<f64> = samples.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Ok(StepPhases {
        batch_assembly: median(|p| p.batch_assembly),
        upload: median(|p| p.upload),
        forward: median(|p| p.forward),
        loss_read: median(|p| p.loss_read),
        backward: median(|p| p.backward),
        gradient_collection: median(|p| p.gradient_collection),
        update: median(|p| p.update),
    })
}

/// Wall seconds of whole training epochs of each of `optimizers`, as
/// `graphsam train` runs them: the default schedule over a seeded random
/// 80/10/10 split (training steps with batch assembly, then the validation
/// pass), every optimizer from the same initial weights (`model`). The runs
/// take turns epoch by epoch, one at a time (epoch k of every optimizer, then
/// epoch k + 1), so drifts in machine speed hit all alike; one list of
/// `epochs` entries per optimizer, in their order.
pub fn time_epochs<M: PropertyModel>(
    model: M,
    dataset: &MoleculeDataset,
    batch_size: usize,
    epochs: usize,
    optimizers: &[OptimizerConfig],
    device: &Device,
) -> Result<Vec<Vec<EpochSeconds>>> {
    let split = make_split(dataset, &SplitKind::Random, SplitSizes::default(), 0)?;
    let scaler = (dataset.task_type == crate::data::TaskType::Regression)
        .then(|| TargetScaler::fit(dataset, &split.train));
    let turns = Turns::new(optimizers.len());
    let outcomes: Vec<Result<Vec<EpochSeconds>>> = std::thread::scope(|scope| {
        let runs: Vec<_> = optimizers
            .iter()
            .enumerate()
            .map(|(index, optimizer)| {
                let (model, split, scaler, turns) =
                    (model.clone(), &split, scaler.as_ref(), &turns);
                scope.spawn(move || {
                    let settings = TrainSettings {
                        epochs,
                        patience: 0,
                        batch_size,
                        seed: 0,
                        optimizer: optimizer.clone(),
                        schedule: NoamLrConfig::default(),
                        metric: dataset.task_type.default_metric(),
                        track_similarity: None,
                    };
                    let mut observer = TakeTurns { turns, index };
                    let outcome = fit(
                        model,
                        dataset,
                        split,
                        scaler,
                        &settings,
                        device,
                        None,
                        &mut observer,
                    );
                    // A failed run gives up its turns so the others go on.
                    turns.finish(index);
                    outcome.map(|o| {
                        o.history
                            .iter()
                            .map(|r| EpochSeconds {
                                train: r.train_seconds,
                                valid: r.valid_seconds,
                                steps: split.train.len().div_ceil(batch_size),
                                passes: r.forward_passes,
                            })
                            .collect()
                    })
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| {
                run.join()
                    .unwrap_or_else(|_| Err(anyhow!("an epoch-timing run panicked")))
            })
            .collect()
    });
    outcomes
        .into_iter()
        .zip(optimizers)
        .map(|(outcome, optimizer)| {
            outcome.with_context(|| format!("timing epochs of {}", optimizer.name()))
        })
        .collect()
}

/// Whose turn it is among runs that take turns epoch by epoch.
struct Turns {
    state: std::sync::Mutex<TurnState>,
    changed: std::sync::Condvar,
}

struct TurnState {
    current: usize,
    finished: Vec<bool>,
}

impl Turns {
    fn new(runs: usize) -> Self {
        Self {
            state: std::sync::Mutex::new(TurnState {
                current: 0,
                finished: vec![false; runs],
            }),
            changed: std::sync::Condvar::new(),
        }
    }

    /// Blocks until it is run `index`'s turn.
    fn wait(&self, index: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.current != index {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Hands the turn to the next unfinished run after `index`.
    fn pass(&self, index: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let runs = state.finished.len();
        if let Some(next) = (1..=runs)
            .map(|k| (index + k) % runs)
            .find(|&k| !state.finished[k])
        {
            state.current = next;
        }
        self.changed.notify_all();
    }

    /// Run `index` is done: it takes no more turns.
    fn finish(&self, index: usize) {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.finished[index] = true;
            if state.current != index {
                return;
            }
        }
        self.pass(index);
    }
}

/// A training observer that runs its epochs only in its turn.
struct TakeTurns<'a> {
    turns: &'a Turns,
    index: usize,
}

impl TrainObserver for TakeTurns<'_> {
    fn epoch_started(&mut self, _epoch: usize, _steps: usize, _molecules: usize) {
        self.turns.wait(self.index);
    }

    fn epoch_finished(&mut self, _record: &EpochRecord, _metric: Metric) {
        self.turns.pass(self.index);
    }
}

/// Time of one training epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochSeconds {
    /// Training steps (batch assembly included).
    pub train: f64,
    /// The validation pass.
    pub valid: f64,
    /// Steps in the epoch.
    pub steps: usize,
    /// Forward passes of the training steps (SAM's second pass and
    /// GraphSAM's anchor included).
    pub passes: u64,
}

/// Whole training epochs of one optimizer (see [`time_epochs`]).
#[derive(Debug, Clone)]
pub struct OptimizerEpochs {
    /// Optimizer name (`adam`, `sam`, …).
    pub name: String,
    /// The first epoch, not counted: a fresh model's first epoch also grows
    /// the heap to the run's working set and meets every batch shape once.
    pub warmup: EpochSeconds,
    /// One entry per timed epoch after the warm-up.
    pub epochs: Vec<EpochSeconds>,
}

impl OptimizerEpochs {
    /// Mean wall seconds per epoch, validation included.
    pub fn mean_seconds(&self) -> f64 {
        let total: Vec<f64> = self.epochs.iter().map(|e| e.train + e.valid).collect();
        super::stats::mean_std(&total).0
    }
}

/// The CPU's fp32 peak and how it was derived.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuPeak {
    /// Peak GFLOP/s over the cores used.
    pub gflops: f64,
    /// The arithmetic behind it, e.g. `2 cores × 8 fp32 lanes × 2 FMA units × 2 FLOP × 2.60 GHz`.
    pub derivation: String,
}

/// The fp32 FMA peak of `threads` cores of this CPU (cores × SIMD lanes ×
/// FMA units × 2 FLOP × clock), from `/proc/cpuinfo`'s flags and the clock
/// measured by [`measured_clock_ghz`] (the boost clock a busy core runs at,
/// which `/proc/cpuinfo` does not show); `None` where the CPU cannot be
/// identified (not Linux or not x86-64).
pub fn cpu_peak(threads: usize) -> Option<CpuPeak> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpu_peak_from(&info, threads, measured_clock_ghz())
}

/// [`cpu_peak`] from the text of `/proc/cpuinfo` and, when known, the
/// measured clock (else the one `/proc/cpuinfo` reports).
pub fn cpu_peak_from(cpuinfo: &str, threads: usize, clock_ghz: Option<f64>) -> Option<CpuPeak> {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let flags = field("flags")?;
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    let reported: Option<f64> = field("cpu MHz")
        .and_then(|m| m.parse().ok())
        .map(|m: f64| m / 1e3);
    let (ghz, clock_source) = match (clock_ghz, reported) {
        (Some(measured), _) => (measured, "measured"),
        (None, Some(reported)) => (reported, "from /proc/cpuinfo"),
        (None, None) => return None,
    };
    let vendor = field("vendor_id").unwrap_or_default();
    let family: u32 = field("cpu family")
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    let model: u32 = field("model").and_then(|m| m.parse().ok()).unwrap_or(0);
    let model_name = field("model name").unwrap_or_else(|| "unknown CPU".into());
    if !has("sse2") {
        return None;
    }
    // fp32 lanes of one FMA unit. AMD's Zen 4 (family 0x19) runs AVX-512
    // on 256-bit units, so its width is AVX2's; Zen 5 (0x1A) is 512-bit.
    // Zen 1 and Zen+ (family 0x17 below model 0x30, and Hygon's 0x18) split
    // every 256-bit AVX2 instruction over 128-bit units: half AVX2's width.
    let amd = vendor == "AuthenticAMD" || vendor == "HygonGenuine";
    let zen4 = amd && family == 0x19;
    let zen1 = amd && ((family == 0x17 && model < 0x30) || family == 0x18);
    let (lanes, why) = if has("avx512f") && !zen4 {
        (16.0, "AVX-512")
    } else if has("avx512f") {
        (8.0, "AVX-512 on Zen 4's 256-bit units")
    } else if zen1 && has("avx2") {
        (4.0, "AVX2 on Zen 1's 128-bit units")
    } else if has("avx2") || has("avx") {
        (8.0, "AVX2")
    } else {
        (4.0, "SSE")
    };
    // Two FMA pipes per core on every x86 core since Haswell / Zen 2 (some
    // Xeon Silver/Bronze parts have a single 512-bit unit: half this peak);
    // without FMA, one add and one multiply pipe.
    let (units, unit_why) = if has("fma") {
        (2.0, "2 FMA units × 2 FLOP")
    } else {
        (1.0, "1 add + 1 mul unit")
    };
    let gflops = threads as f64 * lanes * units * 2.0 * ghz;
    Some(CpuPeak {
        gflops,
        derivation: format!(
            "{threads} cores × {lanes} fp32 lanes ({why}) × {unit_why} × {ghz:.2} GHz ({clock_source}; {model_name})"
        ),
    })
}

/// The clock one busy core runs at, in GHz, measured by timing a chain of
/// dependent integer additions (one per cycle on every x86-64 core since
/// the first: each needs the previous result). Best of three ~20 ms runs.
#[cfg(target_arch = "x86_64")]
pub fn measured_clock_ghz() -> Option<f64> {
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let iterations: u64 = 10_000_000;
        let started = Instant::now();
        let mut x: u64 = 1;
        // SAFETY: register-only arithmetic and a counted loop; no memory,
        // no stack, flags are clobbered as asm! assumes by default.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) x,
                y = in(reg) 3u64,
                n = inout(reg) iterations => _,
                options(nomem, nostack),
            );
        }
        std::hint::black_box(x);
        let seconds = started.elapsed().as_secs_f64();
        best = best.max(8.0 * iterations as f64 / seconds / 1e9);
    }
    (best > 0.1).then_some(best)
}

/// The clock is only measured on x86-64.
#[cfg(not(target_arch = "x86_64"))]
pub fn measured_clock_ghz() -> Option<f64> {
    None
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpuinfo(vendor: &str, family: u32, flags: &str, mhz: f64) -> String {
        cpuinfo_model(vendor, family, 1, flags, mhz)
    }

    fn cpuinfo_model(vendor: &str, family: u32, model: u32, flags: &str, mhz: f64) -> String {
        format!(
            "processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: Test CPU\ncpu MHz\t\t: {mhz}\nflags\t\t: fpu sse sse2 {flags}\n"
        )
    }

    #[test]
    fn peak_is_cores_times_lanes_times_fma_units_times_clock() {
        let intel = cpuinfo("GenuineIntel", 6, "avx avx2 fma avx512f", 2000.0);
        let peak = cpu_peak_from(&intel, 2, None).unwrap();
        assert!(
            (peak.gflops - 2.0 * 16.0 * 2.0 * 2.0 * 2.0).abs() < 1e-9,
            "{peak:?}"
        );
        assert!(
            peak.derivation.contains("from /proc/cpuinfo"),
            "{}",
            peak.derivation
        );
        // Zen 4 splits 512-bit work over 256-bit units; a measured clock wins.
        let zen4 = cpuinfo("AuthenticAMD", 25, "avx avx2 fma avx512f", 2596.15);
        let peak = cpu_peak_from(&zen4, 2, Some(3.65)).unwrap();
        assert!(
            (peak.gflops - 2.0 * 8.0 * 4.0 * 3.65).abs() < 1e-9,
            "{peak:?}"
        );
        assert!(peak.derivation.contains("Zen 4") && peak.derivation.contains("measured"));
        // Zen 2 (family 0x17, model 0x31) has 256-bit units; Zen 1 (model 1)
        // splits AVX2 over 128-bit ones, so its peak is half.
        let zen2 = cpuinfo_model("AuthenticAMD", 23, 49, "avx avx2 fma", 3000.0);
        assert!(
            (cpu_peak_from(&zen2, 4, None).unwrap().gflops - 4.0 * 8.0 * 4.0 * 3.0).abs() < 1e-9
        );
        let zen1 = cpuinfo_model("AuthenticAMD", 23, 1, "avx avx2 fma", 3000.0);
        let peak = cpu_peak_from(&zen1, 4, None).unwrap();
        assert!(
            (peak.gflops - 4.0 * 4.0 * 4.0 * 3.0).abs() < 1e-9,
            "{peak:?}"
        );
        assert!(peak.derivation.contains("Zen 1"), "{}", peak.derivation);
        let intel_avx2 = cpuinfo_model("GenuineIntel", 6, 1, "avx avx2 fma", 3000.0);
        assert!(
            (cpu_peak_from(&intel_avx2, 1, None).unwrap().gflops - 8.0 * 4.0 * 3.0).abs() < 1e-9
        );
    }

    #[test]
    fn runs_take_turns_epoch_by_epoch_and_a_finished_run_is_skipped() {
        // Run 1 stops after one epoch (a failure); runs 0 and 2 do three.
        let turns = Turns::new(3);
        let order = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for (index, epochs) in [(0, 3), (1, 1), (2, 3)] {
                let (turns, order) = (&turns, &order);
                scope.spawn(move || {
                    for _ in 0..epochs {
                        turns.wait(index);
                        order.lock().unwrap().push(index);
                        // Without the turn, a run would slip in here.
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        turns.pass(index);
                    }
                    turns.finish(index);
                });
            }
        });
        assert_eq!(order.into_inner().unwrap(), [0, 1, 2, 0, 2, 0, 2]);
    }

    #[test]
    fn no_peak_without_a_clock_or_flags() {
        assert_eq!(cpu_peak_from("processor : 0\n", 2, Some(3.0)), None);
        let no_clock = "vendor_id : GenuineIntel\nflags : sse2 fma avx2\n";
        assert_eq!(cpu_peak_from(no_clock, 2, None), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_measured_clock_is_a_plausible_cpu_clock() {
        let ghz = measured_clock_ghz().expect("a clock on x86-64");
        assert!((0.5..8.0).contains(&ghz), "{ghz} GHz");
    }
}

/// What to measure in [`benchmark`].
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// Molecules per step (every timed batch is full).
    pub batch_size: usize,
    /// Timed steps per optimizer, after one warm-up step.
    pub steps: usize,
    /// Whole training epochs of each optimizer to time as well, after one
    /// warm-up epoch (0: none).
    pub epochs: usize,
    /// The optimizers, in the order given.
    pub optimizers: Vec<OptimizerConfig>,
}

/// Everything `graphsam bench` reports for one backbone on one dataset.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Scalar parameters of the model.
    pub params: usize,
    /// Per optimizer, in the plan's order.
    pub costs: Vec<OptimizerCost>,
    /// Where one Adam step's time goes (median of 3 instrumented steps).
    pub phases: StepPhases,
    /// Whole training epochs of each optimizer, in the plan's order, if
    /// asked for.
    pub epochs: Vec<OptimizerEpochs>,
}

/// Times the plan's optimizers on the same fresh model (`spec`) and the same
/// full batches of `dataset` (shuffled with seed 0), then one instrumented
/// step and, if asked, whole epochs. Refuses a dataset too small for
/// `steps + 1` full batches.
pub fn benchmark(
    spec: &crate::model::ModelSpec,
    dataset: &MoleculeDataset,
    plan: &BenchPlan,
    device: &Device,
) -> Result<BenchReport> {
    if plan.steps == 0 || plan.batch_size == 0 {
        anyhow::bail!("benchmarking needs at least one step of at least one molecule");
    }
    let plain = device.clone().inner();
    let scaler = (dataset.task_type == crate::data::TaskType::Regression)
        .then(|| TargetScaler::fit(dataset, &(0..dataset.len()).collect::<Vec<_>>()));
    let all: Vec<usize> = (0..dataset.len()).collect();
    let batches: Vec<Vec<usize>> = crate::data::shuffled_batches(&all, plan.batch_size, 0, 0)
        .into_iter()
        .filter(|b| b.len() == plan.batch_size)
        .take(plan.steps + 1)
        .collect();
    if batches.len() < plan.steps + 1 {
        anyhow::bail!(
            "{} has too few molecules for {} batches of {}",
            dataset.name,
            plan.steps + 1,
            plan.batch_size
        );
    }
    let params = crate::with_model!(spec, &plain, 0, |m| burn::module::Module::num_params(&m));
    let costs = crate::with_model!(spec, &plain, 0, |model| {
        time_optimizers(
            model,
            dataset,
            scaler.as_ref(),
            &batches,
            &plan.optimizers,
            device,
        )
    })?;
    let phases = crate::with_model!(spec, &plain, 0, |model| {
        step_phases(model, dataset, scaler.as_ref(), &batches[1], device, 3)
    })?;
    let mut epochs = Vec::new();
    if plan.epochs > 0 {
        let timed = crate::with_model!(spec, &plain, 0, |model| {
            time_epochs(
                model,
                dataset,
                plan.batch_size,
                plan.epochs + 1,
                &plan.optimizers,
                device,
            )
        })?;
        for (mut timed, optimizer) in timed.into_iter().zip(&plan.optimizers) {
            if timed.len() < 2 {
                anyhow::bail!("{} ran fewer epochs than asked", optimizer.name());
            }
            let warmup = timed.remove(0);
            epochs.push(OptimizerEpochs {
                name: optimizer.name().to_string(),
                warmup,
                epochs: timed,
            });
        }
    }
    Ok(BenchReport {
        params,
        costs,
        phases,
        epochs,
    })
}
