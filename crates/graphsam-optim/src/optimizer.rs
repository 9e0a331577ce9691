//! The one optimizer interface: the trainer gives a closure that computes the
//! loss and gradients of a model value; the optimizer decides where (w, w+ε)
//! and how often to call it, and returns the updated model.

use std::marker::PhantomData;

use burn::module::{Module, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::config::{AeSamConfig, AnchorPolicy, GraphSamConfig, OptimizerConfig, RstConfig};
use crate::error::{EvalPoint, StepError, StepFailure, StepWarning};
use crate::param_vector::{NORM_EPSILON, ParamVector};
use crate::schedule::{RhoSchedule, ae_sam_threshold, rst_draw};

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
    /// Steps that took their update gradient at perturbed weights w+ε (the
    /// SAM steps of SAM-k, LookSAM, AE-SAM and RST; every GraphSAM step).
    #[serde(default)]
    pub perturbed_steps: u64,
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
    /// The loss for a progress line: at w if it was computed, else at w+ε.
    /// Curves that compare optimizers should use the two fields below, which
    /// say where the loss was taken.
    pub loss: f32,
    /// The loss at w, if this step evaluated it.
    pub loss_at_weights: Option<f32>,
    /// The loss at w+ε, if this step evaluated it.
    pub loss_perturbed: Option<f32>,
    /// Forward+backward passes this step used.
    pub passes: u32,
    /// ε came from the exact gradient at w, evaluated in this step (two
    /// passes): every SAM step, GraphSAM's anchors (g_h recomputed), and the
    /// steps where SAM-k, LookSAM, AE-SAM or RST chose SAM.
    pub exact_perturbation: bool,
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
    /// The parameters the last update touched (checked by `load_state`).
    pub(crate) param_ids: Vec<ParamId>,
    /// Whether to keep every optimizer's last update gradient (diagnostics).
    pub(crate) track_updates: bool,
    /// The last update gradient, kept while `track_updates` is on.
    pub(crate) tracked_update: Option<ParamVector>,
    _model: PhantomData<fn(&M)>,
}

/// Counters that drive anchors and schedules (all saved with the state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub global_step: u64,
    pub epoch: u64,
    pub step_in_epoch: u64,
    pub rho: f64,
    /// Last epoch whose ρ decay has been applied.
    pub rho_epoch: Option<u64>,
    /// Whether `start_epoch` has been called (GraphSAM needs it).
    #[serde(default)]
    pub epoch_started: bool,
    /// The run's length T, for AE-SAM's and RST's schedules.
    #[serde(default)]
    pub total_steps: Option<u64>,
    /// AE-SAM: EMA of ‖g‖² (μ).
    #[serde(default)]
    pub grad_sq_mean: f64,
    /// AE-SAM: EMA of (‖g‖² − μ)² (σ²).
    #[serde(default)]
    pub grad_sq_var: f64,
}

/// The gradient at one point and the loss there.
struct Evaluation {
    grad: ParamVector,
    loss: f32,
}

/// A step's outcome before anything is committed: the gradient for the base
/// optimizer and the state to keep once it is applied (or skipped).
struct Plan {
    update: ParamVector,
    memory: Memory,
}

/// Per-optimizer state a successful evaluation leaves behind.
enum Memory {
    Nothing,
    /// The g_h of this step (None when it was non-finite: re-anchor next).
    GraphSam {
        g_h: Option<ParamVector>,
    },
    /// A LookSAM SAM step's g_v (None when there was no perturbation).
    LookSam {
        g_v: Option<ParamVector>,
    },
    /// AE-SAM's updated (μ, σ²), None when ‖g‖² was not finite.
    AeSam {
        stats: Option<(f64, f64)>,
    },
}

impl Plan {
    fn plain(update: ParamVector) -> Self {
        Plan {
            update,
            memory: Memory::Nothing,
        }
    }
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
                epoch_started: false,
                total_steps: None,
                grad_sq_mean: 0.0,
                grad_sq_var: 0.0,
            },
            g_h: None,
            g_s: None,
            g_v: None,
            param_ids: Vec::new(),
            track_updates: false,
            tracked_update: None,
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
    /// anchor (with the default policy) and ρ follows its schedule. GraphSAM
    /// refuses to step before the first call.
    pub fn start_epoch(&mut self, epoch: u64) {
        self.progress.epoch = epoch;
        self.progress.step_in_epoch = 0;
        self.progress.epoch_started = true;
        if let OptimizerConfig::GraphSam(c) = &self.config {
            let schedule = rho_schedule(c);
            self.progress.rho = schedule.advance(self.progress.rho, self.progress.rho_epoch, epoch);
            self.progress.rho_epoch = Some(epoch);
        }
    }

    /// Tells the optimizer the run's length T in steps (epochs × steps per
    /// epoch). AE-SAM's threshold c_t and RST's non-constant p_t schedules
    /// run over it and refuse to step without it; the others ignore it.
    pub fn set_total_steps(&mut self, total: u64) {
        self.progress.total_steps = Some(total);
    }

    /// The run's length T, if set.
    pub fn total_steps(&self) -> Option<u64> {
        self.progress.total_steps
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

    /// The last updating gradient: GraphSAM's g_s always; every other
    /// optimizer's while [`track_updates`](Self::track_updates) is on.
    pub fn last_update_gradient(&self) -> Option<&ParamVector> {
        self.g_s
            .as_ref()
            .map(|(g, _)| g)
            .or(self.tracked_update.as_ref())
    }

    /// Keeps (or stops keeping) the gradient of every applied update, so that
    /// [`last_update_gradient`](Self::last_update_gradient) answers for every
    /// optimizer, e.g. to measure how well it predicts the next step's
    /// gradient. Off by default: it holds one more parameter-sized vector.
    /// Not part of the saved state.
    pub fn track_updates(&mut self, on: bool) {
        self.track_updates = on;
        if !on {
            self.tracked_update = None;
        }
    }

    /// LookSAM's stored orthogonal component g_v, for inspection and tests.
    pub fn orthogonal_component(&self) -> Option<&ParamVector> {
        self.g_v.as_ref()
    }

    /// AE-SAM's running mean μ and variance σ² of ‖g‖² (None for the others).
    pub fn grad_norm_statistics(&self) -> Option<(f64, f64)> {
        matches!(self.config, OptimizerConfig::AeSam(_))
            .then_some((self.progress.grad_sq_mean, self.progress.grad_sq_var))
    }

    /// One optimizer step with learning rate `lr`.
    ///
    /// Calls `grad_fn` once (Adam, GraphSAM between anchors, base steps of
    /// SAM-k, LookSAM, AE-SAM and RST) or twice (SAM, anchors, SAM steps).
    /// On failure the model comes back unchanged in the [`StepFailure`] and
    /// the optimizer state is as it was before the step (pass counters
    /// excepted).
    pub fn step<E, F>(
        &mut self,
        lr: f64,
        model: M,
        mut grad_fn: F,
    ) -> Result<(M, StepReport), StepFailure<M, E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let mut report = StepReport {
            step: self.progress.global_step,
            loss: f32::NAN,
            loss_at_weights: None,
            loss_perturbed: None,
            passes: 0,
            exact_perturbation: false,
            rho: self.rho(),
            perturbation_norm: None,
            warnings: Vec::new(),
        };
        let plan = match self.plan(&model, &mut grad_fn, &mut report) {
            Ok(plan) => plan,
            Err(error) => return Err(StepFailure { model, error }),
        };
        let model = self.commit(lr, model, plan, &mut report);
        report.loss = report
            .loss_at_weights
            .or(report.loss_perturbed)
            .unwrap_or(f32::NAN);
        if report.loss_perturbed.is_some() {
            self.counters.perturbed_steps += 1;
        }
        self.progress.global_step += 1;
        self.progress.step_in_epoch += 1;
        self.counters.steps += 1;
        Ok((model, report))
    }

    /// Refuses a step the optimizer is not set up for, before any pass runs.
    fn check_ready<E>(&self) -> Result<(), StepError<E>> {
        let name = self.config.name();
        if matches!(self.config, OptimizerConfig::GraphSam(_)) && !self.progress.epoch_started {
            return Err(StepError::MissingCall {
                optimizer: name,
                call: "start_epoch(epoch)",
                why: "GraphSAM recomputes g_h exactly and applies its ρ schedule at each \
                      epoch start; without the call it would anchor once and never again",
            });
        }
        if self.config.needs_total_steps() && self.progress.total_steps.is_none() {
            return Err(StepError::MissingCall {
                optimizer: name,
                call: "set_total_steps(total)",
                why: "its schedule (AE-SAM's threshold c_t, RST's probability p_t) runs \
                      over the run's T steps",
            });
        }
        Ok(())
    }

    /// Evaluates what the step needs and decides the update, changing no
    /// state but the pass counters.
    fn plan<E, F>(
        &mut self,
        model: &M,
        grad_fn: &mut F,
        report: &mut StepReport,
    ) -> Result<Plan, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        self.check_ready()?;
        let step = self.progress.global_step;
        match self.config.clone() {
            OptimizerConfig::Adam(_) => {
                let at_w = self.evaluate(model, grad_fn, EvalPoint::Weights, report)?;
                Ok(Plan::plain(at_w.grad))
            }
            OptimizerConfig::Sam(c) => {
                report.exact_perturbation = true;
                let at_w = self.evaluate(model, grad_fn, EvalPoint::Weights, report)?;
                let (g_s, _) =
                    self.sam_gradient(model, grad_fn, report, &at_w, c.rho, c.adaptive)?;
                Ok(Plan::plain(g_s))
            }
            OptimizerConfig::SamK(c) => {
                let at_w = self.evaluate(model, grad_fn, EvalPoint::Weights, report)?;
                if step.is_multiple_of(c.k) {
                    report.exact_perturbation = true;
                    let (g_s, _) =
                        self.sam_gradient(model, grad_fn, report, &at_w, c.rho, c.adaptive)?;
                    Ok(Plan::plain(g_s))
                } else {
                    Ok(Plan::plain(at_w.grad))
                }
            }
            OptimizerConfig::GraphSam(c) => self.plan_graphsam(model, grad_fn, report, &c),
            OptimizerConfig::LookSam(c) => {
                self.plan_looksam(model, grad_fn, report, c.rho, c.k, c.alpha)
            }
            OptimizerConfig::AeSam(c) => self.plan_ae_sam(model, grad_fn, report, &c),
            OptimizerConfig::Rst(c) => self.plan_rst(model, grad_fn, report, &c),
        }
    }

    /// Applies the plan: the base optimizer's step with its gradient (or a
    /// counted skip when the gradient is non-finite), then the state it keeps.
    fn commit(&mut self, lr: f64, model: M, plan: Plan, report: &mut StepReport) -> M {
        let Plan { update, memory } = plan;
        let norm = update.norm();
        let applied = norm.is_finite();
        let model = if applied {
            self.param_ids = update.ids();
            if self.track_updates && !matches!(memory, Memory::GraphSam { .. }) {
                self.tracked_update = Some(update.clone());
            }
            let grads = update.to_gradients(&model);
            self.base.step(lr, model, grads)
        } else {
            // Weights and the base optimizer's moments stay as they were.
            self.counters.updates_skipped += 1;
            report.warnings.push(StepWarning::UpdateSkipped {
                step: self.progress.global_step,
            });
            model
        };
        match memory {
            Memory::Nothing => {}
            Memory::GraphSam { g_h } => {
                if applied {
                    self.g_h = g_h;
                    self.g_s = Some((update, norm));
                } else {
                    // Without a usable g_s the EMA cannot continue: re-anchor.
                    self.g_h = None;
                    self.g_s = None;
                }
            }
            Memory::LookSam { g_v } => {
                if applied {
                    self.g_v = g_v;
                }
            }
            Memory::AeSam { stats } => {
                if let Some((mean, var)) = stats {
                    self.progress.grad_sq_mean = mean;
                    self.progress.grad_sq_var = var;
                }
            }
        }
        model
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
            loss,
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
        if !self.usable_direction(norm, report) {
            return (None, norm);
        }
        (Some(numerator.scale(rho / (norm + NORM_EPSILON))), norm)
    }

    /// ‖ε‖ of a perturbation from [`perturbation`](Self::perturbation):
    /// ρ‖d‖/(‖d‖ + 1e-12) in closed form for the plain direction (saving a
    /// pass over the parameters), measured for the adaptive one.
    fn perturbation_norm(eps: &ParamVector, rho: f64, direction_norm: f64, adaptive: bool) -> f64 {
        if adaptive {
            eps.norm()
        } else {
            rho * direction_norm / (direction_norm + NORM_EPSILON)
        }
    }

    /// Whether a direction of this norm can be followed; if not, the warning
    /// and the counted skip.
    fn usable_direction(&mut self, norm: f64, report: &mut StepReport) -> bool {
        if norm.is_finite() && norm != 0.0 {
            return true;
        }
        self.counters.perturbations_skipped += 1;
        report.warnings.push(StepWarning::NoPerturbation {
            step: self.progress.global_step,
            norm,
        });
        false
    }

    /// ∇L(w+ε) with ε from the clean gradient, and whether it was perturbed;
    /// the clean gradient itself when there is no perturbation (no second
    /// pass is needed then).
    fn sam_gradient<E, F>(
        &mut self,
        model: &M,
        grad_fn: &mut F,
        report: &mut StepReport,
        at_w: &Evaluation,
        rho: f64,
        adaptive: bool,
    ) -> Result<(ParamVector, bool), StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        match self.perturbation(model, &at_w.grad, rho, adaptive, report) {
            (Some(eps), norm) => {
                report.perturbation_norm = Some(Self::perturbation_norm(&eps, rho, norm, adaptive));
                let shifted = eps.perturb(model);
                let at_shifted = self.evaluate(&shifted, grad_fn, EvalPoint::Perturbed, report)?;
                Ok((at_shifted.grad, true))
            }
            (None, _) => Ok((at_w.grad.clone(), false)),
        }
    }

    fn plan_graphsam<E, F>(
        &mut self,
        model: &M,
        grad_fn: &mut F,
        report: &mut StepReport,
        c: &GraphSamConfig,
    ) -> Result<Plan, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let anchor = self.g_h.is_none()
            || self.g_s.is_none()
            || match c.anchor {
                AnchorPolicy::Epoch => self.progress.step_in_epoch == 0,
                AnchorPolicy::Steps { steps } => self.progress.global_step.is_multiple_of(steps),
            };
        report.exact_perturbation = anchor;

        // g_h for this step; nothing is stored until the step succeeds.
        let mut clean = None;
        let g_h = if anchor {
            let at_w = self.evaluate(model, grad_fn, EvalPoint::Weights, report)?;
            let g = at_w.grad.clone();
            clean = Some(at_w);
            g
        } else {
            let (Some(previous), Some((g_s, norm))) = (&self.g_h, &self.g_s) else {
                unreachable!("a step without g_h or g_s is an anchor")
            };
            match (c.normalize_per_tensor, c.reference_quirks) {
                (true, true) => previous.linear_combination(
                    c.beta,
                    &g_s.normalize_per_tensor_shifted(1e-8),
                    1.0 - c.beta,
                ),
                (true, false) => {
                    previous.linear_combination(c.beta, &g_s.normalize_per_tensor(), 1.0 - c.beta)
                }
                // β g_h + (1−β) g_s/‖g_s‖ in one pass over the parameters.
                (false, _) => {
                    previous.linear_combination(c.beta, g_s, (1.0 - c.beta) / (norm + NORM_EPSILON))
                }
            }
        };

        let rho = self.progress.rho;
        // The authors' radius starts at `radius` and decays with ρ.
        let radius = c
            .radius
            .map(|r0| if c.rho > 0.0 { r0 * rho / c.rho } else { r0 });
        let (eps, direction_norm) = match radius {
            Some(r) if c.reference_quirks && !anchor => {
                self.reference_perturbation(model, &g_h, rho, r, c.adaptive, report)
            }
            _ => {
                let (eps, norm) = self.perturbation(model, &g_h, rho, c.adaptive, report);
                let eps = eps.map(|e| match radius {
                    Some(r) => e.clip_per_tensor(r),
                    None => e,
                });
                (eps, norm)
            }
        };
        // Clipped or reference-code perturbations are measured, not derived.
        let closed_form = radius.is_none() && !c.adaptive;
        let at_update = match (eps, clean) {
            (Some(eps), _) => {
                report.perturbation_norm = Some(if closed_form {
                    Self::perturbation_norm(&eps, rho, direction_norm, false)
                } else {
                    eps.norm()
                });
                let shifted = eps.perturb(model);
                self.evaluate(&shifted, grad_fn, EvalPoint::Perturbed, report)?
            }
            // No perturbation at an anchor: the clean gradient is ∇L(w+0).
            (None, Some(at_w)) => at_w,
            (None, None) => self.evaluate(model, grad_fn, EvalPoint::Weights, report)?,
        };
        let update = if c.reference_quirks {
            // Their closure's loss.backward(loss.detach()) seeds backward with the loss.
            at_update.grad.scale(f64::from(at_update.loss))
        } else {
            at_update.grad
        };
        Ok(Plan {
            update,
            // A non-finite g_h is dropped so that the next step anchors afresh.
            memory: Memory::GraphSam {
                g_h: direction_norm.is_finite().then_some(g_h),
            },
        })
    }

    /// The authors' ε between anchors: their scale ρ/(‖∇‖ + 1e-12) divides
    /// by the norm of gradients already zeroed, i.e. by 1e-12, so every
    /// tensor of d·ρ/1e-12 (d = w²⊙g_h or g_h) is clipped back to the radius.
    fn reference_perturbation(
        &mut self,
        model: &M,
        g_h: &ParamVector,
        rho: f64,
        radius: f64,
        adaptive: bool,
        report: &mut StepReport,
    ) -> (Option<ParamVector>, f64) {
        if rho == 0.0 {
            return (None, 0.0);
        }
        let direction = if adaptive {
            let t = ParamVector::abs_weights(model, g_h);
            g_h.hadamard(&t).hadamard(&t)
        } else {
            g_h.clone()
        };
        let norm = direction.norm();
        if !self.usable_direction(norm, report) {
            return (None, norm);
        }
        // The scale in f32, as torch computed it: ρ / (0 + 1e-12).
        let scale = rho as f32 / (0.0f32 + 1e-12f32);
        (
            Some(direction.scale(f64::from(scale)).clip_per_tensor(radius)),
            norm,
        )
    }

    fn plan_looksam<E, F>(
        &mut self,
        model: &M,
        grad_fn: &mut F,
        report: &mut StepReport,
        rho: f64,
        k: u64,
        alpha: f64,
    ) -> Result<Plan, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let at_w = self.evaluate(model, grad_fn, EvalPoint::Weights, report)?;
        let g = &at_w.grad;
        if self.progress.global_step.is_multiple_of(k) {
            report.exact_perturbation = true;
            let (g_s, perturbed) = self.sam_gradient(model, grad_fn, report, &at_w, rho, false)?;
            // Without a perturbation (ρ = 0, zero direction) g_s = g, and
            // g − proj_g g is rounding noise that the steps between would
            // blow up to α‖g‖: keep no g_v, so they take plain base steps.
            let g_v = if perturbed {
                // g_v = g_s − (g·g_s / ‖g‖²) g, computed on the device.
                Some(match (g.dot(&g_s), g.squared_norm()) {
                    (Some(dot), Some(sq)) => {
                        let coefficient = (dot / sq.add_scalar(NORM_EPSILON as f32)).neg();
                        g_s.add_scaled(g, &coefficient)
                    }
                    _ => g_s.clone(),
                })
            } else {
                None
            };
            Ok(Plan {
                update: g_s,
                memory: Memory::LookSam { g_v },
            })
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
            Ok(Plan::plain(update))
        }
    }

    fn plan_ae_sam<E, F>(
        &mut self,
        model: &M,
        grad_fn: &mut F,
        report: &mut StepReport,
        c: &AeSamConfig,
    ) -> Result<Plan, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let at_w = self.evaluate(model, grad_fn, EvalPoint::Weights, report)?;
        let sq = at_w.grad.squared_norm_host();
        if !sq.is_finite() {
            // Nothing to learn from; the base step below is skipped as non-finite.
            return Ok(Plan {
                update: at_w.grad,
                memory: Memory::AeSam { stats: None },
            });
        }
        let (delta, p) = (c.delta, &self.progress);
        let mean = delta * p.grad_sq_mean + (1.0 - delta) * sq;
        let var = delta * p.grad_sq_var + (1.0 - delta) * (sq - mean).powi(2);
        let total = p.total_steps.expect("checked by check_ready");
        let c_t = ae_sam_threshold(c.lambda1, c.lambda2, p.global_step, total);
        // A sharp region: ‖g‖² unusually large for its recent distribution.
        let update = if sq >= mean + c_t * var.sqrt() {
            report.exact_perturbation = true;
            self.sam_gradient(model, grad_fn, report, &at_w, c.rho, false)?
                .0
        } else {
            at_w.grad
        };
        Ok(Plan {
            update,
            memory: Memory::AeSam {
                stats: Some((mean, var)),
            },
        })
    }

    fn plan_rst<E, F>(
        &mut self,
        model: &M,
        grad_fn: &mut F,
        report: &mut StepReport,
        c: &RstConfig,
    ) -> Result<Plan, StepError<E>>
    where
        F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
    {
        let step = self.progress.global_step;
        let p = c
            .schedule
            .probability(step, self.progress.total_steps)
            .expect("checked by check_ready");
        let at_w = self.evaluate(model, grad_fn, EvalPoint::Weights, report)?;
        if rst_draw(c.seed, step) < p {
            report.exact_perturbation = true;
            let (g_s, _) = self.sam_gradient(model, grad_fn, report, &at_w, c.rho, false)?;
            Ok(Plan::plain(g_s))
        } else {
            Ok(Plan::plain(at_w.grad))
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
            param_ids: self.param_ids.clone(),
            track_updates: self.track_updates,
            tracked_update: self.tracked_update.clone(),
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
