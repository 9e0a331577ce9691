//! The one optimizer interface: the trainer gives a closure that computes the
//! loss and gradients of a model value; the optimizer decides where (w, w+ε)
//! and how often to call it, and returns the updated model.

use std::marker::PhantomData;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::config::{AnchorPolicy, GraphSamConfig, OptimizerConfig};
use crate::error::{EvalPoint, StepError, StepWarning};
use crate::param_vector::{NORM_EPSILON, ParamVector};
use crate::schedule::RhoSchedule;

/// Forward/backward passes and warnings counted over the optimizer's life.
///
/// Each call of the trainer's closure is one forward and one backward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassCounters {
    /// Optimizer steps completed.
    pub steps: u64,
    /// Forward passes run (closure calls).
    pub forward: u64,
    /// Backward passes run (closure calls).
    pub backward: u64,
    /// Steps where the perturbation was dropped (zero or non-finite direction).
    pub perturbations_skipped: u64,
    /// Steps whose update was skipped because the gradient was non-finite.
    pub updates_skipped: u64,
}

/// What one step did, for logging.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Global step index of this step (0-based).
    pub step: u64,
    /// The loss to log: at w if it was computed, else at w+ε.
    pub loss: f32,
    /// The loss at w, if this step evaluated it.
    pub loss_at_weights: Option<f32>,
    /// The loss at w+ε, if this step evaluated it.
    pub loss_perturbed: Option<f32>,
    /// Forward+backward passes this step used.
    pub passes: u32,
    /// GraphSAM: this step recomputed g_h exactly. SAM-k/LookSAM: this was a SAM step.
    pub anchor: bool,
    /// The radius ρ in force (None for Adam).
    pub rho: Option<f64>,
    /// ‖ε‖, when a perturbation was applied.
    pub perturbation_norm: Option<f64>,
    /// Recoverable problems met in this step.
    pub warnings: Vec<StepWarning>,
}

/// Any optimizer of the family, for models of type `M`; built by
/// [`OptimizerConfig::init`].
///
/// Per step the trainer calls
/// `opt.step(lr, model, |m: &M| -> Result<(f32, GradientsParams), E> { ... })`:
/// the closure runs forward and backward on the current batch for the model
/// value it is given and returns the loss and `GradientsParams::from_grads`.
/// Perturbed models are clones mapped by a `ModuleMapper`; the base optimizer
/// steps the untouched original with the chosen gradient.
pub struct SharpnessOptimizer<M> {
    pub(crate) config: OptimizerConfig,
    pub(crate) base: ModuleOptimizer,
    pub(crate) counters: PassCounters,
    pub(crate) progress: Progress,
    /// GraphSAM's perturbation-gradient estimate.
    pub(crate) g_h: Option<ParamVector>,
    /// GraphSAM's previous updating gradient and its norm.
    pub(crate) g_s: Option<(ParamVector, f64)>,
    /// LookSAM's stored orthogonal component.
    pub(crate) g_v: Option<ParamVector>,
    _model: PhantomData<fn(&M)>,
}

/// Counters that drive anchors and the ρ schedule (all saved with the state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub global_step: u64,
    pub epoch: u64,
    pub step_in_epoch: u64,
    pub rho: f64,
    /// Last epoch whose ρ decay has been applied.
    pub rho_epoch: Option<u64>,
}

/// The gradient at one point (its loss goes straight into the report).
struct Evaluation {
    grad: ParamVector,
}

impl<M: Module> SharpnessOptimizer<M> {
    /// A fresh optimizer (no state). Prefer [`OptimizerConfig::init`], which validates.
    pub(crate) fn new(config: OptimizerConfig) -> Self {
        let base = config.base().init();
        let rho = config.rho().unwrap_or(0.0);
        Self {
            config,
            base,
            counters: PassCounters::default(),
            progress: Progress {
                global_step: 0,
                epoch: 0,
                step_in_epoch: 0,
                rho,
                rho_epoch: None,
            },
            g_h: None,
            g_s: None,
            g_v: None,
            _model: PhantomData,
        }
    }

    /// The configuration this optimizer was built from.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The CLI name of the optimizer.
    pub fn name(&self) -> &'static str {
        self.config.name()
    }

    /// Marks the start of `epoch` (0-based): the next step is GraphSAM's
    /// anchor (with the default policy) and ρ follows its schedule.
    pub fn start_epoch(&mut self, epoch: u64) {
        self.progress.epoch = epoch;
        self.progress.step_in_epoch = 0;
        if let OptimizerConfig::GraphSam(c) = &self.config {
            let schedule = rho_schedule(c);
            self.progress.rho =
                schedule.advance(self.progress.rho, self.progress.rho_epoch, epoch);
            self.progress.rho_epoch = Some(epoch);
        }
    }

    /// The radius ρ in force now (None for Adam).
    pub fn rho(&self) -> Option<f64> {
        self.config.rho().map(|_| self.progress.rho)
    }

    /// Passes and warnings counted so far.
    pub fn counters(&self) -> PassCounters {
        self.counters
    }

    /// Steps taken so far (the index the next step will get).
    pub fn global_step(&self) -> u64 {
        self.progress.global_step
    }

    /// The epoch set by the last [`start_epoch`](Self::start_epoch).
    pub fn epoch(&self) -> u64 {
        self.progress.epoch
    }

    /// GraphSAM's current g_h, for inspection and tests.
    pub fn perturbation_estimate(&self) -> Option<&ParamVector> {
        self.g_h.as_ref()
    }

    /// GraphSAM's last updating gradient g_s, for inspection and tests.
    pub fn last_update_gradient(&self) -> Option<&ParamVector> {
        self.g_s.as_ref().map(|(g, _)| g)
    }

    /// LookSAM's stored orthogonal component g_v, for inspection and tests.
    pub fn orthogonal_component(&self) -> Option<&ParamVector> {
        self.g_v.as_ref()
    }

    /// One optimizer step with learning rate `lr`.
    ///
    /// Calls `grad_fn` once (Adam, GraphSAM between anchors, SAM-k/LookSAM
    /// between SAM steps) or twice (SAM, anchors, SAM steps). On error the
    /// optimizer state is as it was before the step (pass counters excepted).
    pub fn step<E, F>(
        &mut self,
        lr: f64,
        model: M,
        mut grad_fn: F,
    ) -> Result<(M, StepReport), StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let mut report = StepReport {
            step: self.progress.global_step,
            loss: f32::NAN,
            loss_at_weights: None,
            loss_perturbed: None,
            passes: 0,
            anchor: false,
            rho: self.rho(),
            perturbation_norm: None,
            warnings: Vec::new(),
        };
        let model = match self.config.clone() {
            OptimizerConfig::Adam(_) => self.step_plain(lr, model, &mut grad_fn, &mut report)?,
            OptimizerConfig::Sam(c) => {
                report.anchor = true;
                self.step_sam(lr, model, &mut grad_fn, &mut report, c.rho, c.adaptive)?
            }
            OptimizerConfig::SamK(c) => {
                if self.progress.global_step % c.k == 0 {
                    report.anchor = true;
                    self.step_sam(lr, model, &mut grad_fn, &mut report, c.rho, c.adaptive)?
                } else {
                    self.step_plain(lr, model, &mut grad_fn, &mut report)?
                }
            }
            OptimizerConfig::GraphSam(c) => {
                self.step_graphsam(lr, model, &mut grad_fn, &mut report, &c)?
            }
            OptimizerConfig::LookSam(c) => {
                self.step_looksam(lr, model, &mut grad_fn, &mut report, c.rho, c.k, c.alpha)?
            }
        };
        report.loss = report
            .loss_at_weights
            .or(report.loss_perturbed)
            .unwrap_or(f32::NAN);
        self.progress.global_step += 1;
        self.progress.step_in_epoch += 1;
        self.counters.steps += 1;
        Ok((model, report))
    }

    /// Calls the closure once, counts the pass, rejects a non-finite loss.
    fn evaluate<E, F>(
        &mut self,
        model: &M,
        grad_fn: &mut F,
        point: EvalPoint,
        report: &mut StepReport,
    ) -> Result<Evaluation, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let (loss, mut grads) = grad_fn(model).map_err(StepError::Closure)?;
        self.counters.forward += 1;
        self.counters.backward += 1;
        report.passes += 1;
        match point {
            EvalPoint::Weights => report.loss_at_weights = Some(loss),
            EvalPoint::Perturbed => report.loss_perturbed = Some(loss),
        }
        if !loss.is_finite() {
            return Err(StepError::NonFiniteLoss {
                step: self.progress.global_step,
                loss,
                point,
            });
        }
        Ok(Evaluation {
            grad: ParamVector::from_gradients(model, &mut grads),
        })
    }

    /// ε = ρ d/‖d‖, or ρ T²d/‖Td‖ with T = |w| when adaptive, and the norm
    /// divided by. None (and a counted warning) when the direction is zero or
    /// non-finite; None without warning when ρ = 0.
    fn perturbation(
        &mut self,
        model: &M,
        direction: &ParamVector,
        rho: f64,
        adaptive: bool,
        report: &mut StepReport,
    ) -> (Option<ParamVector>, f64) {
        if rho == 0.0 {
            return (None, 0.0);
        }
        let (numerator, norm) = if adaptive {
            let t = ParamVector::abs_weights(model, direction);
            let td = direction.hadamard(&t);
            let norm = td.norm();
            (td.hadamard(&t), norm)
        } else {
            (direction.clone(), direction.norm())
        };
        if !norm.is_finite() || norm == 0.0 {
            self.counters.perturbations_skipped += 1;
            report.warnings.push(StepWarning::NoPerturbation {
                step: self.progress.global_step,
                norm,
            });
            return (None, norm);
        }
        (Some(numerator.scale(rho / (norm + NORM_EPSILON))), norm)
    }

    /// The base optimizer's step with gradient `g`. Returns the model and
    /// ‖g‖, or skips the update (warning) when g is non-finite.
    fn apply(
        &mut self,
        lr: f64,
        model: M,
        g: &ParamVector,
        report: &mut StepReport,
    ) -> (M, Option<f64>) {
        let norm = g.norm();
        if !norm.is_finite() {
            self.counters.updates_skipped += 1;
            report.warnings.push(StepWarning::UpdateSkipped {
                step: self.progress.global_step,
            });
            return (model, None);
        }
        let grads = g.to_gradients(&model);
        (self.base.step(lr, model, grads), Some(norm))
    }

    fn step_plain<E, F>(
        &mut self,
        lr: f64,
        model: M,
        grad_fn: &mut F,
        report: &mut StepReport,
    ) -> Result<M, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let at_w = self.evaluate(&model, grad_fn, EvalPoint::Weights, report)?;
        Ok(self.apply(lr, model, &at_w.grad, report).0)
    }

    fn step_sam<E, F>(
        &mut self,
        lr: f64,
        model: M,
        grad_fn: &mut F,
        report: &mut StepReport,
        rho: f64,
        adaptive: bool,
    ) -> Result<M, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let at_w = self.evaluate(&model, grad_fn, EvalPoint::Weights, report)?;
        let g_s = self.sam_gradient(&model, grad_fn, report, &at_w, rho, adaptive)?;
        Ok(self.apply(lr, model, &g_s, report).0)
    }

    /// ∇L(w+ε) with ε from the clean gradient; the clean gradient itself when
    /// there is no perturbation (no second pass is needed then).
    fn sam_gradient<E, F>(
        &mut self,
        model: &M,
        grad_fn: &mut F,
        report: &mut StepReport,
        at_w: &Evaluation,
        rho: f64,
        adaptive: bool,
    ) -> Result<ParamVector, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        match self.perturbation(model, &at_w.grad, rho, adaptive, report).0 {
            Some(eps) => {
                report.perturbation_norm = Some(eps.norm());
                let shifted = eps.perturb(model);
                Ok(self
                    .evaluate(&shifted, grad_fn, EvalPoint::Perturbed, report)?
                    .grad)
            }
            None => Ok(at_w.grad.clone()),
        }
    }

    fn step_graphsam<E, F>(
        &mut self,
        lr: f64,
        model: M,
        grad_fn: &mut F,
        report: &mut StepReport,
        c: &GraphSamConfig,
    ) -> Result<M, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let anchor = self.g_h.is_none()
            || match c.anchor {
                AnchorPolicy::Epoch => self.progress.step_in_epoch == 0,
                AnchorPolicy::Steps { steps } => self.progress.global_step % steps == 0,
            };
        report.anchor = anchor;

        // g_h for this step; nothing is stored until the step succeeds.
        let mut clean = None;
        let g_h = if anchor {
            let at_w = self.evaluate(&model, grad_fn, EvalPoint::Weights, report)?;
            let g = at_w.grad.clone();
            clean = Some(at_w);
            g
        } else {
            let previous = self.g_h.as_ref().expect("non-anchor steps follow an anchor");
            match &self.g_s {
                Some((g_s, norm)) => {
                    let direction = if c.normalize_per_tensor {
                        g_s.normalize_per_tensor()
                    } else {
                        g_s.scale(1.0 / (norm + NORM_EPSILON))
                    };
                    previous.linear_combination(c.beta, &direction, 1.0 - c.beta)
                }
                // The last update was skipped (non-finite): keep g_h as it is.
                None => previous.clone(),
            }
        };

        let rho = self.progress.rho;
        let (eps, direction_norm) = self.perturbation(&model, &g_h, rho, c.adaptive, report);
        let eps = eps.map(|eps| match c.radius {
                // The authors' radius starts at `radius` and decays with ρ.
                Some(r0) if c.rho > 0.0 => eps.clip_per_tensor(r0 * rho / c.rho),
                _ => eps,
            });
        let g_s = match (eps, clean) {
            (Some(eps), _) => {
                report.perturbation_norm = Some(eps.norm());
                let shifted = eps.perturb(&model);
                self.evaluate(&shifted, grad_fn, EvalPoint::Perturbed, report)?
                    .grad
            }
            // No perturbation at an anchor: the clean gradient is ∇L(w+0).
            (None, Some(at_w)) => at_w.grad,
            (None, None) => {
                self.evaluate(&model, grad_fn, EvalPoint::Weights, report)?
                    .grad
            }
        };
        let (model, norm) = self.apply(lr, model, &g_s, report);
        // A non-finite g_h is dropped so that the next step anchors afresh.
        self.g_h = direction_norm.is_finite().then_some(g_h);
        self.g_s = norm.map(|n| (g_s, n));
        Ok(model)
    }

    #[allow(clippy::too_many_arguments)]
    fn step_looksam<E, F>(
        &mut self,
        lr: f64,
        model: M,
        grad_fn: &mut F,
        report: &mut StepReport,
        rho: f64,
        k: u64,
        alpha: f64,
    ) -> Result<M, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let at_w = self.evaluate(&model, grad_fn, EvalPoint::Weights, report)?;
        let g = &at_w.grad;
        if self.progress.global_step % k == 0 {
            report.anchor = true;
            let g_s = self.sam_gradient(&model, grad_fn, report, &at_w, rho, false)?;
            // g_v = g_s − (g·g_s / ‖g‖²) g, computed on the device.
            let g_v = match (g.dot(&g_s), g.squared_norm()) {
                (Some(dot), Some(sq)) => {
                    let coefficient = (dot / sq.add_scalar(NORM_EPSILON as f32)).neg();
                    g_s.add_scaled(g, &coefficient)
                }
                _ => g_s.clone(),
            };
            let (model, norm) = self.apply(lr, model, &g_s, report);
            if norm.is_some() {
                self.g_v = Some(g_v);
            }
            Ok(model)
        } else {
            let update = match (&self.g_v, g.squared_norm()) {
                (Some(g_v), Some(g_sq)) => match g_v.squared_norm() {
                    Some(v_sq) => {
                        // α ‖g‖/‖g_v‖, kept on the device.
                        let ratio: Tensor<1> = g_sq.sqrt().mul_scalar(alpha as f32)
                            / v_sq.sqrt().add_scalar(NORM_EPSILON as f32);
                        g.add_scaled(g_v, &ratio)
                    }
                    None => g.clone(),
                },
                _ => g.clone(),
            };
            Ok(self.apply(lr, model, &update, report).0)
        }
    }
}

impl<M> Clone for SharpnessOptimizer<M> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            base: self.base.clone(),
            counters: self.counters,
            progress: self.progress.clone(),
            g_h: self.g_h.clone(),
            g_s: self.g_s.clone(),
            g_v: self.g_v.clone(),
            _model: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for SharpnessOptimizer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharpnessOptimizer")
            .field("optimizer", &self.config.name())
            .field("global_step", &self.progress.global_step)
            .field("epoch", &self.progress.epoch)
            .field("rho", &self.progress.rho)
            .field("counters", &self.counters)
            .finish()
    }
}

pub(crate) fn rho_schedule(c: &GraphSamConfig) -> RhoSchedule {
    RhoSchedule {
        rho0: c.rho,
        gamma: c.gamma,
        period: c.rho_period,
        decay: c.rho_decay,
    }
}
