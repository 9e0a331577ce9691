//! The sharpness of a trained run: its training loss over a split as a
//! function of the weights, the top Hessian eigenvalue and ε-sharpness
//! there, and loss landscapes along filter-normalised random directions.
//!
//! The loss is the one training minimised, with every stochastic part off
//! ([`PropertyModel::eval_loss`]), averaged over fixed batches of the split
//! weighted by their size: a deterministic function of the weights, so finite
//! differences and ascent steps measure the surface, not noise.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::optim::GradientsParams;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use graphsam_optim::ParamVector;
use graphsam_optim::sharpness::{
    AscentOptions, EigenEstimate, PowerIteration, SharpnessEstimate, epsilon_sharpness,
    filter_normalized, gaussian_like, top_hessian_eigenvalue,
};

use super::checkpoint::load_model;
use super::inference::load_card;
use super::record::{RUN_COLOURS, files, read_json};
use super::run::{ModelCard, RunConfig, device_without_autodiff};
use crate::data::{
    BatchLayout, MoleculeDataset, Split, TargetScaler, TaskType, sequential_batches,
};
use crate::model::PropertyModel;

/// Which molecules of a run's split the loss is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitPart {
    /// The training molecules (the surface the optimizer saw).
    Train,
    /// The validation molecules.
    Valid,
    /// The test molecules.
    Test,
}

impl SplitPart {
    /// The part's name.
    pub fn name(self) -> &'static str {
        match self {
            SplitPart::Train => "train",
            SplitPart::Valid => "valid",
            SplitPart::Test => "test",
        }
    }

    fn of(self, split: &Split) -> &[usize] {
        match self {
            SplitPart::Train => &split.train,
            SplitPart::Valid => &split.valid,
            SplitPart::Test => &split.test,
        }
    }
}

/// The mean training loss over fixed batches of some molecules, and its
/// gradient: the objective every measurement here evaluates.
pub struct SplitObjective<'a> {
    dataset: &'a MoleculeDataset,
    batches: Vec<Vec<usize>>,
    scaler: Option<&'a TargetScaler>,
    device: Device,
    molecules: usize,
}

impl<'a> SplitObjective<'a> {
    /// The objective over `indices` of `dataset` in batches of `batch_size`,
    /// on the autodiff `device`. Errors on an empty set of molecules.
    pub fn new(
        dataset: &'a MoleculeDataset,
        indices: &[usize],
        scaler: Option<&'a TargetScaler>,
        batch_size: usize,
        device: &Device,
    ) -> Result<Self> {
        if indices.is_empty() {
            bail!("no molecules to measure the loss on (the split part is empty)");
        }
        if dataset.task_type == TaskType::Regression && scaler.is_none() {
            bail!("a regression loss needs the run's target scaling");
        }
        Ok(Self {
            dataset,
            batches: sequential_batches(indices, batch_size.max(1)),
            scaler,
            device: device.clone(),
            molecules: indices.len(),
        })
    }

    /// Number of molecules the loss averages over.
    pub fn molecules(&self) -> usize {
        self.molecules
    }

    /// The loss and its gradient at `model` (one forward and backward pass
    /// over every batch).
    pub fn loss_and_grad<M: PropertyModel>(&self, model: &M) -> Result<(f32, GradientsParams)> {
        let mut total = 0.0f64;
        let mut sum: Option<ParamVector> = None;
        for molecules in &self.batches {
            let weight = molecules.len() as f64 / self.molecules as f64;
            let batch = M::Batch::assemble(self.dataset, molecules, self.scaler)?;
            let input = M::input(&batch, &self.device)?;
            let loss = model.eval_loss(&input, self.dataset.task_type);
            total += weight * f64::from(loss.clone().into_scalar::<f32>());
            let mut grads = GradientsParams::from_grads(loss.backward(), model);
            let g = ParamVector::from_gradients(model, &mut grads);
            sum = Some(match sum {
                Some(s) => s.linear_combination(1.0, &g, weight),
                None => g.scale(weight),
            });
        }
        let sum = sum.unwrap_or_default();
        Ok((total as f32, sum.to_gradients(model)))
    }

    /// The loss at `model`, forward passes only (no autodiff graph).
    pub fn loss<M: PropertyModel>(&self, model: &M) -> Result<f64> {
        let plain = device_without_autodiff(&self.device);
        // Parameters that track gradients would record a graph that no
        // backward pass ever frees: one per call, gigabytes over a landscape.
        let model = model.valid();
        let mut total = 0.0f64;
        for molecules in &self.batches {
            let weight = molecules.len() as f64 / self.molecules as f64;
            let batch = M::Batch::assemble(self.dataset, molecules, self.scaler)?;
            let input = M::input(&batch, &plain)?;
            let loss = model.eval_loss(&input, self.dataset.task_type);
            total += weight * f64::from(loss.into_scalar::<f32>());
        }
        Ok(total)
    }

    /// The parameters the loss depends on, as the zero-cost template of a
    /// direction (their gradient on the first batch).
    pub fn parameters<M: PropertyModel>(&self, model: &M) -> Result<ParamVector> {
        let first = SplitObjective {
            dataset: self.dataset,
            batches: self.batches[..1].to_vec(),
            scaler: self.scaler,
            device: self.device.clone(),
            molecules: self.batches[0].len(),
        };
        let (_, mut grads) = first.loss_and_grad(model)?;
        let params = ParamVector::from_gradients(model, &mut grads);
        if params.is_empty() {
            bail!("the loss depends on no parameter of the model");
        }
        Ok(params)
    }
}

/// A trained run folder opened for measurement: its card, config and split.
pub struct RunFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Its model card.
    pub card: ModelCard,
    /// Its configuration (dataset file, columns).
    pub config: RunConfig,
    /// Its split.
    pub split: Split,
}

impl RunFolder {
    /// Opens `dir`, refusing a folder without a trained model.
    pub fn open(dir: &Path) -> Result<Self> {
        let card = load_card(dir)?;
        if !dir.join(files::BEST_MODEL).exists() {
            bail!(
                "{} has no {}: the run has not finished an epoch, or its weights were not kept \
                 (comparison records in docs/results keep no weights)",
                dir.display(),
                files::BEST_MODEL
            );
        }
        let config: RunConfig = read_json(&dir.join(files::CONFIG))?;
        let split: Split = read_json(&dir.join(files::SPLIT))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            card,
            config,
            split,
        })
    }

    /// The molecules of `part`, after checking that `dataset` is the one the
    /// run was trained on.
    pub fn indices(&self, dataset: &MoleculeDataset, part: SplitPart) -> Result<Vec<usize>> {
        if dataset.n_tasks != self.card.task_names.len() || dataset.task_type != self.card.task_type
        {
            bail!(
                "{} was trained on {} ({} {:?} tasks), not on {} ({} {:?} tasks)",
                self.dir.display(),
                self.card.dataset,
                self.card.task_names.len(),
                self.card.task_type,
                dataset.name,
                dataset.n_tasks,
                dataset.task_type
            );
        }
        self.split.validate(dataset.len()).with_context(|| {
            format!(
                "{} was trained on another version of {} (its split does not fit the {} \
                 molecules loaded)",
                self.dir.display(),
                self.card.dataset,
                dataset.len()
            )
        })?;
        let indices = part.of(&self.split).to_vec();
        if indices.is_empty() {
            bail!(
                "the {} part of {}'s split is empty",
                part.name(),
                self.dir.display()
            );
        }
        Ok(indices)
    }
}

/// Settings of [`measure_sharpness`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharpnessSettings {
    /// The split part the loss is taken over.
    pub part: SplitPart,
    /// Molecules per repeat drawn from the part (`None`: all of it).
    pub sample: Option<usize>,
    /// Repeats (each with its own seed: start vector, and subset with `sample`).
    pub repeats: usize,
    /// First seed.
    pub seed: u64,
    /// Radius of ε-sharpness.
    pub rho: f64,
    /// Projected gradient-ascent steps of ε-sharpness.
    pub ascent_steps: usize,
    /// At most this many power iterations.
    pub power_iterations: usize,
    /// Relative tolerance of the power iteration.
    pub tolerance: f64,
    /// Finite-difference step h relative to max(1, ‖w‖).
    pub relative_step: f64,
    /// Molecules per forward pass.
    pub batch_size: usize,
}

impl SharpnessSettings {
    /// Refuses settings that cannot give a measurement, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if self.repeats == 0 {
            bail!("--repeats must be at least 1");
        }
        if self.sample == Some(0) {
            bail!("--sample must be at least 1 molecule");
        }
        if !(self.rho.is_finite() && self.rho > 0.0) {
            bail!("--rho must be positive, got {}", self.rho);
        }
        if self.power_iterations == 0 {
            bail!("--power-iterations must be at least 1");
        }
        if !(self.relative_step.is_finite() && self.relative_step > 0.0) {
            bail!("--fd-step must be positive, got {}", self.relative_step);
        }
        Ok(())
    }
}

/// One repeat's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharpnessRepeat {
    /// The repeat's seed.
    pub seed: u64,
    /// Molecules the loss averaged over.
    pub molecules: usize,
    /// L(w).
    pub loss: f64,
    /// max L(w+ε) − L(w) over ‖ε‖ ≤ ρ (a lower bound found by ascent).
    pub epsilon_sharpness: f64,
    /// L(w+ε) along the ascent.
    pub ascent: Vec<f64>,
    /// The top Hessian eigenvalue.
    pub top_eigenvalue: f64,
    /// Power-iteration estimates.
    pub eigenvalue_history: Vec<f64>,
    /// Whether the power iteration met its tolerance.
    pub converged: bool,
    /// ‖Hv − λv‖/|λ| at the end.
    pub residual: f64,
    /// The finite-difference step used.
    pub fd_step: f64,
    /// Forward+backward passes over the molecules.
    pub passes: u64,
}

/// A run's sharpness: every repeat and their mean and spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSharpness {
    /// The run folder.
    pub run: String,
    /// Its dataset.
    pub dataset: String,
    /// The optimizer that trained it (from its config).
    pub optimizer: String,
    /// The settings.
    pub settings: SharpnessSettings,
    /// One entry per repeat.
    pub repeats: Vec<SharpnessRepeat>,
    /// Mean and sample standard deviation of L(w).
    pub loss: MeanStd,
    /// Mean and sample standard deviation of ε-sharpness.
    pub epsilon_sharpness: MeanStd,
    /// Mean and sample standard deviation of the top eigenvalue.
    pub top_eigenvalue: MeanStd,
}

/// A mean with the sample standard deviation (0 for one value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
}

impl MeanStd {
    /// Of `values` (NaN mean for none).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Self { mean, std }
    }
}

/// The molecules of repeat `r`: all of `indices`, or a seeded subset.
fn repeat_molecules(indices: &[usize], sample: Option<usize>, seed: u64) -> Vec<usize> {
    match sample {
        Some(n) if n < indices.len() => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5A5A_0F0F);
            let mut chosen = indices.to_vec();
            chosen.shuffle(&mut rng);
            chosen.truncate(n);
            chosen.sort_unstable();
            chosen
        }
        _ => indices.to_vec(),
    }
}

/// ε-sharpness and the top Hessian eigenvalue of `run`'s best model on
/// `dataset` (the one it was trained on), `settings.repeats` times.
pub fn measure_sharpness(
    run: &RunFolder,
    dataset: &MoleculeDataset,
    settings: &SharpnessSettings,
    device: &Device,
    mut progress: impl FnMut(&str),
) -> Result<RunSharpness> {
    settings.validate()?;
    let indices = run.indices(dataset, settings.part)?;
    let weights = run.dir.join(files::BEST_MODEL);
    let mut repeats = Vec::new();
    crate::with_model!(&run.card.model, device, 0, |model| {
        let model = load_model(model, &weights)?;
        for r in 0..settings.repeats {
            let seed = settings.seed + r as u64;
            let molecules = repeat_molecules(&indices, settings.sample, seed);
            let objective = SplitObjective::new(
                dataset,
                &molecules,
                run.card.scaler.as_ref(),
                settings.batch_size,
                device,
            )?;
            let grad_fn = |m: &_| objective.loss_and_grad(m);
            progress(&format!(
                "repeat {}/{}: ε-sharpness (ρ = {}) on {} molecules",
                r + 1,
                settings.repeats,
                settings.rho,
                molecules.len()
            ));
            let ascent: SharpnessEstimate = epsilon_sharpness(
                &model,
                grad_fn,
                &AscentOptions {
                    rho: settings.rho,
                    steps: settings.ascent_steps,
                    random_start: None,
                },
            )
            .map_err(|e| anyhow!("ε-sharpness of {}: {e}", run.dir.display()))?;
            progress(&format!(
                "repeat {}/{}: top Hessian eigenvalue",
                r + 1,
                settings.repeats
            ));
            let eigen: EigenEstimate = top_hessian_eigenvalue(
                &model,
                grad_fn,
                &PowerIteration {
                    max_iterations: settings.power_iterations,
                    tolerance: settings.tolerance,
                    step: graphsam_optim::sharpness::FiniteDifferenceStep::Relative(
                        settings.relative_step,
                    ),
                    seed,
                },
            )
            .map_err(|e| anyhow!("top Hessian eigenvalue of {}: {e}", run.dir.display()))?;
            repeats.push(SharpnessRepeat {
                seed,
                molecules: molecules.len(),
                loss: ascent.loss,
                epsilon_sharpness: ascent.sharpness,
                ascent: ascent.ascent,
                top_eigenvalue: eigen.eigenvalue,
                eigenvalue_history: eigen.history,
                converged: eigen.converged,
                residual: eigen.residual,
                fd_step: eigen.step,
                passes: ascent.passes + eigen.passes,
            });
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let column = |f: fn(&SharpnessRepeat) -> f64| repeats.iter().map(f).collect::<Vec<_>>();
    Ok(RunSharpness {
        run: run.dir.display().to_string(),
        dataset: run.card.dataset.clone(),
        optimizer: run.config.train.optimizer.name().to_string(),
        settings: settings.clone(),
        loss: MeanStd::of(&column(|r| r.loss)),
        epsilon_sharpness: MeanStd::of(&column(|r| r.epsilon_sharpness)),
        top_eigenvalue: MeanStd::of(&column(|r| r.top_eigenvalue)),
        repeats,
    })
}

/// Settings of [`loss_landscape`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandscapeSettings {
    /// The split part the loss is taken over.
    pub part: SplitPart,
    /// Molecules drawn from the part (`None`: all of it).
    pub sample: Option<usize>,
    /// 1 (a curve) or 2 (a surface).
    pub dims: usize,
    /// Points per axis.
    pub points: usize,
    /// Each axis runs over [−range, range] (in units of the filter-normalised direction).
    pub range: f64,
    /// Seed of the directions (and of the subset).
    pub seed: u64,
    /// Molecules per forward pass.
    pub batch_size: usize,
}

impl LandscapeSettings {
    /// Refuses a grid that cannot be drawn, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if !(1..=2).contains(&self.dims) {
            bail!("--dims must be 1 or 2, got {}", self.dims);
        }
        if self.points < 2 {
            bail!("--points must be at least 2, got {}", self.points);
        }
        if !(self.range.is_finite() && self.range > 0.0) {
            bail!("--range must be positive, got {}", self.range);
        }
        if self.sample == Some(0) {
            bail!("--sample must be at least 1 molecule");
        }
        Ok(())
    }
}

/// A run's loss over the grid of [`LandscapeSettings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Landscape {
    /// The run folder.
    pub run: String,
    /// A short label (the optimizer, or the folder).
    pub label: String,
    /// Coordinates of the axis (the same for both axes).
    pub axis: Vec<f64>,
    /// Loss at each grid point, row-major (β outer, α inner) for 2-D.
    pub loss: Vec<f64>,
    /// Molecules the loss averaged over.
    pub molecules: usize,
}

/// The evenly spaced coordinates of one axis.
pub fn axis(points: usize, range: f64) -> Vec<f64> {
    if points == 1 {
        return vec![0.0];
    }
    (0..points)
        .map(|i| -range + 2.0 * range * i as f64 / (points - 1) as f64)
        .collect()
}

/// The loss of `run`'s best model along one or two filter-normalised random
/// directions (Li et al. 2018) through its weights.
pub fn loss_landscape(
    run: &RunFolder,
    dataset: &MoleculeDataset,
    settings: &LandscapeSettings,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Landscape> {
    settings.validate()?;
    let indices = run.indices(dataset, settings.part)?;
    let molecules = repeat_molecules(&indices, settings.sample, settings.seed);
    let weights = run.dir.join(files::BEST_MODEL);
    let axis = axis(settings.points, settings.range);
    let total = axis.len().pow(settings.dims as u32);
    let mut loss = Vec::with_capacity(total);
    crate::with_model!(&run.card.model, device, 0, |model| {
        let model = load_model(model, &weights)?;
        let objective = SplitObjective::new(
            dataset,
            &molecules,
            run.card.scaler.as_ref(),
            settings.batch_size,
            device,
        )?;
        let like = objective.parameters(&model)?;
        let w = ParamVector::weights_like(&model, &like);
        let first = filter_normalized(&gaussian_like(&like, settings.seed), &w);
        let second = filter_normalized(&gaussian_like(&like, settings.seed + 1), &w);
        let betas = if settings.dims == 2 {
            axis.clone()
        } else {
            vec![0.0]
        };
        for &beta in &betas {
            for &alpha in &axis {
                let shift = first.linear_combination(alpha, &second, beta);
                let value = objective.loss(&shift.perturb(&model))?;
                loss.push(value);
                progress(loss.len(), total);
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Landscape {
        run: run.dir.display().to_string(),
        label: run.config.train.optimizer.name().to_string(),
        axis,
        loss,
        molecules: molecules.len(),
    })
}

/// Draws landscapes as SVG: 1-D as one curve per run on shared axes; 2-D as
/// one heat map per run, side by side, on a shared log-loss colour scale
/// (blue low, red high) with the trained weights marked at the centre.
pub fn plot_landscapes(
    path: &Path,
    landscapes: &[Landscape],
    dims: usize,
    part: &str,
) -> Result<()> {
    use super::record::{plot_err, value_range};
    use plotters::prelude::*;

    if landscapes.is_empty() {
        bail!("no landscape to plot");
    }
    let mut svg = String::new();
    if dims == 1 {
        let root = SVGBackend::with_string(&mut svg, (640, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let all: Vec<(f64, f64)> = landscapes
            .iter()
            .flat_map(|l| l.axis.iter().copied().zip(l.loss.iter().copied()))
            .filter(|p| p.1.is_finite())
            .collect();
        let (lo, hi) = value_range(&all);
        let range = landscapes[0].axis.last().copied().unwrap_or(1.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{part} loss along a filter-normalised direction"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(-range..range, lo..hi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("α (w + α·d)")
            .y_desc("loss")
            .draw()
            .map_err(plot_err)?;
        for (i, l) in landscapes.iter().enumerate() {
            let colour = RUN_COLOURS[i % RUN_COLOURS.len()];
            let points: Vec<(f64, f64)> = l
                .axis
                .iter()
                .copied()
                .zip(l.loss.iter().copied())
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(l.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 2, colour.filled())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    } else {
        let panel = 360u32;
        let width = panel * landscapes.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (width, panel + 40)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let log = |v: f64| v.max(1e-12).log10();
        let finite: Vec<f64> = landscapes
            .iter()
            .flat_map(|l| l.loss.iter().copied())
            .filter(|v| v.is_finite())
            .map(log)
            .collect();
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let span = (hi - lo).max(1e-12);
        let (title, body) = root.split_vertically(40);
        title
            .titled(
                &format!(
                    "{part} loss around the trained weights: log10 loss {lo:.2} (blue) to {hi:.2} (red)"
                ),
                ("sans-serif", 16),
            )
            .map_err(plot_err)?;
        let panels = body.split_evenly((1, landscapes.len()));
        for (area, l) in panels.iter().zip(landscapes) {
            let n = l.axis.len();
            let range = l.axis.last().copied().unwrap_or(1.0);
            let half = if n > 1 { range / (n - 1) as f64 } else { range };
            let mut chart = ChartBuilder::on(area)
                .caption(&l.label, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d(-range - half..range + half, -range - half..range + half)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("α")
                .y_desc("β")
                .draw()
                .map_err(plot_err)?;
            let cells = l.loss.iter().enumerate().map(|(k, &v)| {
                let (row, col) = (k / n, k % n);
                let (x, y) = (l.axis[col], l.axis[row]);
                let colour = if v.is_finite() {
                    let t = ((log(v) - lo) / span).clamp(0.0, 1.0);
                    HSLColor(0.66 * (1.0 - t), 0.75, 0.5)
                } else {
                    HSLColor(0.0, 0.0, 0.2)
                };
                Rectangle::new(
                    [(x - half, y - half), (x + half, y + half)],
                    colour.filled(),
                )
            });
            chart.draw_series(cells).map_err(plot_err)?;
            chart
                .draw_series(std::iter::once(Cross::new(
                    (0.0, 0.0),
                    5,
                    BLACK.stroke_width(2),
                )))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_symmetric_and_include_the_weights() {
        let a = axis(5, 1.0);
        assert_eq!(a, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(axis(2, 0.3), vec![-0.3, 0.3]);
    }

    #[test]
    fn mean_and_sample_std() {
        let m = MeanStd::of(&[1.0, 2.0, 3.0]);
        assert_eq!(m.mean, 2.0);
        assert!((m.std - 1.0).abs() < 1e-12);
        assert_eq!(MeanStd::of(&[4.0]).std, 0.0);
    }

    #[test]
    fn repeat_subsets_are_seeded_sorted_and_within_the_part() {
        let part: Vec<usize> = (100..200).collect();
        let a = repeat_molecules(&part, Some(10), 1);
        assert_eq!(a, repeat_molecules(&part, Some(10), 1));
        assert_ne!(a, repeat_molecules(&part, Some(10), 2));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|i| part.contains(i)));
        assert_eq!(repeat_molecules(&part, None, 1), part);
        assert_eq!(repeat_molecules(&part, Some(500), 1), part);
    }
}
