//! The training loop: seeded shuffled epochs, one optimizer step per batch,
//! validation after every epoch, early stopping on the validation metric, the
//! best model kept, a resume checkpoint after every epoch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::optim::GradientsParams;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use graphsam_optim::{
    NoamLr, NoamLrConfig, OptimizerConfig, ParamVector, SharpnessOptimizer, StepReport,
};

use super::checkpoint::{Checkpoint, model_record_from_bytes, model_record_to_bytes, save_model};
use super::record::{
    EpochRecord, LossMean, SimilarityRecord, files, plot_learning_curve, write_epoch_history,
    write_similarity,
};
use crate::data::{
    BatchLayout, DataError, Metric, MetricScore, MoleculeDataset, Split, TargetScaler, TaskType,
    evaluate, sequential_batches, shuffled_batches,
};
use crate::model::PropertyModel;

/// How to train: everything besides the model, the data and the split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Stop after this many epochs without validation improvement (0 = never stop early).
    pub patience: usize,
    /// Molecules per training step.
    pub batch_size: usize,
    /// Seed of the batch order (and of any randomness in the forward pass).
    pub seed: u64,
    /// The optimizer (Adam, SAM, GraphSAM, SAM-k, LookSAM) and its settings.
    pub optimizer: OptimizerConfig,
    /// The NoamLR learning-rate schedule, identical for every optimizer.
    pub schedule: NoamLrConfig,
    /// Metric that selects the best epoch.
    pub metric: Metric,
    /// Every this many steps, one extra pass takes the exact gradient ∇L(w)
    /// on the step's batch and records its cosine with the perturbation
    /// direction the optimizer uses (GraphSAM's g_h) and with the previous
    /// updating gradient (`None`: off, no extra pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_similarity: Option<u64>,
}

/// Progress notifications; the library never prints, the CLI renders these.
pub trait TrainObserver {
    /// An epoch of `steps` steps over `molecules` molecules begins.
    fn epoch_started(&mut self, _epoch: usize, _steps: usize, _molecules: usize) {}
    /// A step finished on a batch of `molecules` molecules.
    fn step_finished(&mut self, _report: &StepReport, _molecules: usize) {}
    /// An epoch finished (after validation).
    fn epoch_finished(&mut self, _record: &EpochRecord, _metric: Metric) {}
    /// Something recoverable went wrong (e.g. a skipped perturbation).
    fn warning(&mut self, _message: &str) {}
    /// Training resumed from a checkpoint after `epochs_done` epochs.
    fn resumed(&mut self, _epochs_done: usize) {}
    /// Asked after each epoch's checkpoint is written: `true` stops the run
    /// there with [`Interrupted`]; running it again resumes.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// Set by [`request_stop`]; read after each epoch's checkpoint.
static STOP_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks every training in this process to stop after its current epoch's
/// checkpoint, with [`Interrupted`] (the Python package's Ctrl-C); running
/// the same training again resumes. Stays set until [`clear_stop_request`].
pub fn request_stop() {
    STOP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Withdraws a [`request_stop`], before starting new training.
pub fn clear_stop_request() {
    STOP_REQUESTED.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`request_stop`] was called and not withdrawn.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Training stopped at an observer's request after `epochs_done` epochs;
/// the checkpoint in the output folder resumes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("training interrupted after {epochs_done} epochs; run the same command again to resume")]
pub struct Interrupted {
    /// Epochs finished and checkpointed.
    pub epochs_done: usize,
}

/// An observer that ignores everything (tests, quiet library use).
pub struct SilentObserver;
impl TrainObserver for SilentObserver {}

/// What a finished training run returns.
pub struct TrainOutcome<M> {
    /// The model of the best validation epoch.
    pub best_model: M,
    /// Epoch (0-based) of the best validation metric.
    pub best_epoch: usize,
    /// Best validation metric.
    pub best_valid: Option<f64>,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
    /// Whether early stopping ended the run before `epochs`.
    pub stopped_early: bool,
}

/// Trainer state saved in the checkpoint (besides weights and optimizer).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    epochs_done: usize,
    best_epoch: usize,
    best_valid: Option<f64>,
    epochs_without_improvement: usize,
    history: Vec<EpochRecord>,
    settings: TrainSettings,
    /// `--track-similarity` records so far.
    #[serde(default)]
    similarity: Vec<SimilarityRecord>,
}

/// Trains `model` on `split.train`, selecting on `split.valid`.
///
/// `device` must be an autodiff device (the model is moved there). With
/// `out_dir`, writes the per-epoch history, learning curve, best model and
/// a resume checkpoint there, and resumes from that checkpoint if one exists
/// for the same settings.
#[allow(clippy::too_many_arguments)]
pub fn fit<M: PropertyModel>(
    model: M,
    dataset: &MoleculeDataset,
    split: &Split,
    scaler: Option<&TargetScaler>,
    settings: &TrainSettings,
    device: &Device,
    out_dir: Option<&Path>,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome<M>> {
    check_fit_inputs(dataset, split, settings)?;
    let run = FitRun {
        dataset,
        split,
        scaler,
        settings,
        device,
    };
    let mut model = model.to_device(device).train();
    let mut optimizer: SharpnessOptimizer<M> = settings
        .optimizer
        .init()
        .map_err(|e| anyhow!("optimizer settings: {e}"))?;
    let steps_per_epoch = split.train.len().div_ceil(settings.batch_size);
    let schedule = NoamLr::new(settings.schedule.clone(), steps_per_epoch, settings.epochs)
        .map_err(|e| anyhow!("learning-rate schedule: {e}"))?;
    // AE-SAM's threshold and RST's probability schedules run over the whole run.
    optimizer.set_total_steps((steps_per_epoch * settings.epochs) as u64);

    let mut state = TrainerState {
        epochs_done: 0,
        best_epoch: 0,
        best_valid: None,
        epochs_without_improvement: 0,
        history: Vec::new(),
        settings: settings.clone(),
        similarity: Vec::new(),
    };
    // Tracking compares each step's exact gradient with the previous update,
    // which only GraphSAM keeps on its own.
    optimizer.track_updates(settings.track_similarity.is_some());
    let mut best_model = model.valid();
    if let Some(dir) = out_dir
        && dir.join(files::CHECKPOINT).exists()
    {
        (model, best_model, state) = resume(dir, model, best_model, &mut optimizer, settings)?;
        observer.resumed(state.epochs_done);
    }

    while state.epochs_done < settings.epochs && !patience_exhausted(&state, settings) {
        let epoch = state.epochs_done;
        let passes_before = optimizer.counters();
        let (next, steps) = train_epoch(
            model,
            &mut optimizer,
            &schedule,
            &run,
            epoch,
            observer,
            &mut state.similarity,
        )?;
        model = next;

        let valid_started = Instant::now();
        let valid = validate(&model.valid(), &run, epoch, observer)?;
        let valid_seconds = valid_started.elapsed().as_secs_f64();
        let improved = is_improvement(valid, &state, settings.metric);
        if improved {
            state.best_valid = valid;
            state.best_epoch = epoch;
            state.epochs_without_improvement = 0;
            best_model = model.valid();
            if let Some(dir) = out_dir {
                save_model(&best_model, &dir.join(files::BEST_MODEL))?;
            }
        } else {
            state.epochs_without_improvement += 1;
        }
        let passes_after = optimizer.counters();
        let ((clean_loss, clean_loss_steps), (perturbed_loss, perturbed_loss_steps)) =
            (steps.clean.finish(), steps.perturbed.finish());
        let record = EpochRecord {
            epoch,
            clean_loss,
            perturbed_loss,
            clean_loss_steps,
            perturbed_loss_steps,
            valid_metric: valid,
            learning_rate: steps.last_lr,
            rho: optimizer.rho().unwrap_or(0.0),
            train_seconds: steps.seconds,
            valid_seconds,
            forward_passes: passes_after.forward - passes_before.forward,
            backward_passes: passes_after.backward - passes_before.backward,
            is_best: improved,
            tracking_passes: steps.tracking_passes,
            tracking_seconds: steps.tracking_seconds,
        };
        observer.epoch_finished(&record, settings.metric);
        state.history.push(record);
        state.epochs_done = epoch + 1;

        if let Some(dir) = out_dir {
            write_checkpoint(dir, &state, &model, &optimizer)?;
        }
        if (observer.should_stop() || stop_requested()) && state.epochs_done < settings.epochs {
            return Err(Interrupted {
                epochs_done: state.epochs_done,
            }
            .into());
        }
    }
    let stopped_early = state.epochs_done < settings.epochs && patience_exhausted(&state, settings);
    Ok(TrainOutcome {
        best_model,
        best_epoch: state.best_epoch,
        best_valid: state.best_valid,
        history: state.history,
        stopped_early,
    })
}

/// What every step of a fit reads.
struct FitRun<'a> {
    dataset: &'a MoleculeDataset,
    split: &'a Split,
    scaler: Option<&'a TargetScaler>,
    settings: &'a TrainSettings,
    device: &'a Device,
}

/// Refuses empty splits and batches before any work.
fn check_fit_inputs(
    dataset: &MoleculeDataset,
    split: &Split,
    settings: &TrainSettings,
) -> Result<()> {
    if split.train.is_empty() {
        bail!("the training split of {} is empty", dataset.name);
    }
    if split.valid.is_empty() {
        bail!(
            "the validation split of {} is empty: nothing to select the best epoch on",
            dataset.name
        );
    }
    if settings.batch_size == 0 {
        bail!("batch size must be at least 1");
    }
    Ok(())
}

/// Early stopping: `patience` epochs in a row without a better validation metric.
fn patience_exhausted(state: &TrainerState, settings: &TrainSettings) -> bool {
    settings.patience > 0 && state.epochs_without_improvement >= settings.patience
}

/// Restores model, best model, optimizer and trainer state from the
/// checkpoint in `dir`, refusing one written with other settings.
fn resume<M: PropertyModel>(
    dir: &Path,
    model: M,
    best_model: M,
    optimizer: &mut SharpnessOptimizer<M>,
    settings: &TrainSettings,
) -> Result<(M, M, TrainerState)> {
    let path = dir.join(files::CHECKPOINT);
    let ckpt = Checkpoint::read(&path)?;
    let saved: TrainerState = rmp_serde::from_slice(&ckpt.trainer_state)
        .with_context(|| format!("reading the trainer state in {}", path.display()))?;
    if saved.settings != *settings {
        bail!(
            "{} was written by a run with different settings; use a new output folder \
             or delete the checkpoint to start over",
            path.display()
        );
    }
    let model = model_record_from_bytes(model, ckpt.model, &path.display().to_string())?;
    optimizer
        .load_state(&ckpt.optimizer, &model)
        .map_err(|e| anyhow!("restoring the optimizer from {}: {e}", path.display()))?;
    let best_model = super::checkpoint::load_model(best_model, &dir.join(files::BEST_MODEL))?;
    Ok((model, best_model, saved))
}

/// What one epoch of steps measured.
struct EpochSteps {
    clean: LossMean,
    perturbed: LossMean,
    last_lr: f64,
    /// Seconds of the optimizer's steps (tracking passes excluded).
    seconds: f64,
    tracking_passes: u64,
    tracking_seconds: f64,
}

/// One epoch of optimizer steps over the shuffled training batches.
fn train_epoch<M: PropertyModel>(
    mut model: M,
    optimizer: &mut SharpnessOptimizer<M>,
    schedule: &NoamLr,
    run: &FitRun,
    epoch: usize,
    observer: &mut dyn TrainObserver,
    similarity: &mut Vec<SimilarityRecord>,
) -> Result<(M, EpochSteps)> {
    let settings = run.settings;
    let task = run.dataset.task_type;
    optimizer.start_epoch(epoch as u64);
    let order = shuffled_batches(
        &run.split.train,
        settings.batch_size,
        settings.seed,
        epoch as u64,
    );
    observer.epoch_started(epoch, order.len(), run.split.train.len());
    let started = Instant::now();
    let (mut clean, mut perturbed) = (LossMean::default(), LossMean::default());
    let mut lr = schedule.lr_at(optimizer.global_step());
    let (mut tracking_passes, mut tracking_seconds) = (0u64, 0.0f64);
    for molecules in &order {
        let batch = M::Batch::assemble(run.dataset, molecules, run.scaler)?;
        let input = M::input(&batch, run.device)?;
        lr = schedule.lr_at(optimizer.global_step());
        let step_seed = settings.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ optimizer.global_step();
        let tracked = match settings.track_similarity {
            Some(k) if optimizer.global_step().is_multiple_of(k) => {
                let tracking_started = Instant::now();
                // The same pass the optimizer runs at w (same seed), so the
                // training trajectory is the same with tracking on or off.
                let loss = model.loss(&input, task, step_seed);
                let mut grads = GradientsParams::from_grads(loss.backward(), &model);
                let exact = ParamVector::from_gradients(&model, &mut grads);
                let record = similarity_record(&exact, optimizer, epoch);
                tracking_passes += 1;
                tracking_seconds += tracking_started.elapsed().as_secs_f64();
                Some(record)
            }
            _ => None,
        };
        let (next, report) = optimizer
            .step(lr, model, |m: &M| {
                let loss = m.loss(&input, task, step_seed);
                let value: f32 = loss.clone().into_scalar();
                let grads = GradientsParams::from_grads(loss.backward(), m);
                Ok::<_, std::convert::Infallible>((value, grads))
            })
            .map_err(|e| anyhow!("epoch {epoch}: {e}"))?;
        model = next;
        for w in &report.warnings {
            observer.warning(&format!("epoch {epoch}, step {}: {w}", report.step));
        }
        clean.add(report.loss_at_weights);
        perturbed.add(report.loss_perturbed);
        if let Some(mut record) = tracked {
            record.exact_perturbation = report.exact_perturbation;
            similarity.push(record);
        }
        observer.step_finished(&report, molecules.len());
    }
    let seconds = started.elapsed().as_secs_f64() - tracking_seconds;
    Ok((
        model,
        EpochSteps {
            clean,
            perturbed,
            last_lr: lr,
            seconds,
            tracking_passes,
            tracking_seconds,
        },
    ))
}

/// The cosines of the exact gradient `exact` with the directions
/// `optimizer` holds before its next step.
fn similarity_record<M: PropertyModel>(
    exact: &ParamVector,
    optimizer: &SharpnessOptimizer<M>,
    epoch: usize,
) -> SimilarityRecord {
    let norm = exact.norm();
    let cosine = |other: Option<&ParamVector>| {
        other.map(|o| {
            let dot = exact
                .dot(o)
                .map_or(0.0, |t| f64::from(t.into_scalar::<f32>()));
            dot / (norm * o.norm()).max(f64::MIN_POSITIVE)
        })
    };
    let tensor_median = |other: Option<&ParamVector>| {
        other.and_then(|o| super::stats::median(&exact.per_tensor_cosines(o)))
    };
    SimilarityRecord {
        step: optimizer.global_step(),
        epoch,
        cos_perturbation: cosine(optimizer.perturbation_estimate()),
        cos_previous_update: cosine(optimizer.last_update_gradient()),
        gradient_norm: norm,
        exact_perturbation: false,
        tensor_cos_perturbation: tensor_median(optimizer.perturbation_estimate()),
        tensor_cos_previous_update: tensor_median(optimizer.last_update_gradient()),
    }
}

/// The validation metric after `epoch`: `None` (with a warning) when the
/// split cannot be scored (one class, no labels); any other failure (a NaN
/// prediction) fails the run, the last checkpoint kept.
fn validate<M: PropertyModel>(
    model: &M,
    run: &FitRun,
    epoch: usize,
    observer: &mut dyn TrainObserver,
) -> Result<Option<f64>> {
    // Validation runs without autodiff: no graph is recorded, no gradients kept.
    let plain_device = run.device.clone().inner();
    match evaluate_split(
        model,
        run.dataset,
        &run.split.valid,
        run.scaler,
        run.settings.metric,
        &plain_device,
    ) {
        Ok(score) => Ok(Some(score.value)),
        Err(e)
            if matches!(
                e.downcast_ref::<DataError>(),
                Some(DataError::NoScorableTask { .. })
            ) =>
        {
            observer.warning(&format!(
                "epoch {epoch}: the validation split cannot be scored: {e}"
            ));
            Ok(None)
        }
        Err(e) => Err(e.context(format!("validating after epoch {epoch}"))),
    }
}

/// Whether `valid` beats the best so far (the first epoch counts as best
/// even unscored, so a best model always exists).
fn is_improvement(valid: Option<f64>, state: &TrainerState, metric: Metric) -> bool {
    match (valid, state.best_valid) {
        (Some(v), Some(best)) => {
            if metric.higher_is_better() {
                v > best
            } else {
                v < best
            }
        }
        (Some(_), None) => true,
        (None, _) => state.history.is_empty(),
    }
}

/// Writes the epoch history, the learning curve and the resume checkpoint.
fn write_checkpoint<M: PropertyModel>(
    dir: &Path,
    state: &TrainerState,
    model: &M,
    optimizer: &SharpnessOptimizer<M>,
) -> Result<()> {
    write_epoch_history(dir, &state.history)?;
    if state.settings.track_similarity.is_some() {
        write_similarity(dir, &state.similarity, optimizer.name())?;
    }
    plot_learning_curve(
        &dir.join(files::CURVE_SVG),
        &state.history,
        state.settings.metric.name(),
    )?;
    Checkpoint {
        // MessagePack keeps every f64 bit-exact (JSON text may not),
        // so best-epoch decisions after a resume match an uninterrupted run.
        trainer_state: rmp_serde::to_vec_named(state)?,
        model: model_record_to_bytes(model)?,
        optimizer: optimizer
            .save_state()
            .map_err(|e| anyhow!("saving the optimizer state: {e}"))?,
    }
    .write(&dir.join(files::CHECKPOINT))
}

/// Predictions for the molecules `indices`, row-major `indices.len() × T`:
/// log-odds for classification (see [`probability`]), target units for
/// regression (mapped back through `scaler`).
pub fn predict_indices<M: PropertyModel>(
    model: &M,
    dataset: &MoleculeDataset,
    indices: &[usize],
    scaler: Option<&TargetScaler>,
    device: &Device,
    batch_size: usize,
) -> Result<Vec<f32>> {
    let task = dataset.task_type;
    let mut out = batch_outputs(model, dataset, indices, device, batch_size, |m, input| {
        m.predict(input, task)
    })?;
    if task == TaskType::Regression
        && let Some(scaler) = scaler
    {
        for row in out.chunks_mut(dataset.n_tasks) {
            scaler.inverse_transform(row);
        }
    }
    Ok(out)
}

/// Molecule embeddings ([`PropertyModel::embed`]) for the molecules
/// `indices`, row-major, with the embedding width.
pub fn embed_indices<M: PropertyModel>(
    model: &M,
    dataset: &MoleculeDataset,
    indices: &[usize],
    device: &Device,
    batch_size: usize,
) -> Result<(Vec<f32>, usize)> {
    let out = batch_outputs(model, dataset, indices, device, batch_size, |m, input| {
        m.embed(input)
    })?;
    let width = out.len() / indices.len().max(1);
    Ok((out, width))
}

/// `output` of the model for the molecules `indices`, batch by batch, as
/// one row-major host vector.
fn batch_outputs<M: PropertyModel>(
    model: &M,
    dataset: &MoleculeDataset,
    indices: &[usize],
    device: &Device,
    batch_size: usize,
    output: impl Fn(&M, &M::Input) -> burn::tensor::Tensor<2>,
) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for molecules in sequential_batches(indices, batch_size.max(1)) {
        let batch = M::Batch::assemble(dataset, &molecules, None)?;
        let input = M::input(&batch, device)?;
        let values = output(model, &input)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow!("reading model outputs: {e:?}"))?;
        out.extend_from_slice(&values);
    }
    Ok(out)
}

/// The probability σ(x) of a classification output's log-odds `x`,
/// computed in f64 so that it keeps its digits up to |x| ≈ 36.
pub fn probability(log_odds: f32) -> f64 {
    1.0 / (1.0 + (-(log_odds as f64)).exp())
}

/// The metric of `model` on the molecules `indices` (missing labels ignored).
/// Ranking metrics rank the log-odds, which never saturate.
pub fn evaluate_split<M: PropertyModel>(
    model: &M,
    dataset: &MoleculeDataset,
    indices: &[usize],
    scaler: Option<&TargetScaler>,
    metric: Metric,
    device: &Device,
) -> Result<MetricScore> {
    let predictions = predict_indices(model, dataset, indices, scaler, device, 64)?;
    let mut targets = Vec::with_capacity(predictions.len());
    for &i in indices {
        targets.extend_from_slice(dataset.targets_of(i));
    }
    Ok(evaluate(metric, &predictions, &targets, dataset.n_tasks)?)
}

/// Path of the resume checkpoint in a run folder.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(files::CHECKPOINT)
}
