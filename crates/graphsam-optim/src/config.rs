//! Configuration of every optimizer, with documented defaults, and the one
//! [`OptimizerConfig`] enum the trainer and the CLI select from.

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::optimizer::SharpnessOptimizer;
use crate::schedule::{RhoDecay, RstSchedule};

/// Adam (Kingma & Ba 2015) as the base optimizer, through burn's implementation.
///
/// The defaults are PyTorch's, not burn's: burn's epsilon defaults to 1e-5,
/// PyTorch's (and the reference GraphSAM code's) to 1e-8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// First-moment decay β₁. Default 0.9.
    pub beta_1: f32,
    /// Second-moment decay β₂. Default 0.999.
    pub beta_2: f32,
    /// Denominator epsilon. Default 1e-8 (PyTorch).
    pub epsilon: f32,
    /// L2 penalty added to the gradient (PyTorch Adam's `weight_decay`). Default 0.
    pub weight_decay: f32,
    /// Use AMSGrad's running maximum of the second moment. Default false.
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

/// Plain stochastic gradient descent as the base optimizer (used to check the
/// SAM math against closed forms; also a valid choice for training).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Momentum factor (0 = none). Default 0.
    pub momentum: f64,
    /// L2 penalty added to the gradient. Default 0.
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

/// The base optimizer that turns the (perturbed) gradient into an update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BaseOptimizerConfig {
    /// Adam (default).
    Adam(AdamConfig),
    /// SGD.
    Sgd(SgdConfig),
}

impl Default for BaseOptimizerConfig {
    fn default() -> Self {
        BaseOptimizerConfig::Adam(AdamConfig::default())
    }
}

impl BaseOptimizerConfig {
    fn validate(&self, optimizer: &'static str) -> Result<(), ConfigError> {
        match self {
            BaseOptimizerConfig::Adam(c) => {
                for (field, v) in [("base.beta_1", c.beta_1), ("base.beta_2", c.beta_2)] {
                    if !(0.0..1.0).contains(&v) {
                        return Err(ConfigError::new(
                            optimizer,
                            field,
                            format!("must be in [0, 1), got {v}"),
                        ));
                    }
                }
                if !(c.epsilon.is_finite() && c.epsilon > 0.0) {
                    return Err(ConfigError::new(
                        optimizer,
                        "base.epsilon",
                        format!("must be > 0, got {}", c.epsilon),
                    ));
                }
                check_non_negative(optimizer, "base.weight_decay", f64::from(c.weight_decay))
            }
            BaseOptimizerConfig::Sgd(c) => {
                if !(0.0..1.0).contains(&c.momentum) {
                    return Err(ConfigError::new(
                        optimizer,
                        "base.momentum",
                        format!("must be in [0, 1), got {}", c.momentum),
                    ));
                }
                check_non_negative(optimizer, "base.weight_decay", f64::from(c.weight_decay))
            }
        }
    }

    /// burn's module optimizer for this configuration.
    pub(crate) fn init(&self) -> ModuleOptimizer {
        match self {
            BaseOptimizerConfig::Adam(c) => {
                let mut adam = burn::optim::AdamConfig::new()
                    .with_beta_1(c.beta_1)
                    .with_beta_2(c.beta_2)
                    .with_epsilon(c.epsilon)
                    .with_amsgrad(c.amsgrad);
                if c.weight_decay > 0.0 {
                    adam = adam.with_weight_decay(Some(WeightDecayConfig::new(c.weight_decay)));
                }
                adam.init()
            }
            BaseOptimizerConfig::Sgd(c) => {
                let mut sgd = burn::optim::SgdConfig::new();
                if c.momentum > 0.0 {
                    // Dampening 0 makes it PyTorch's classical momentum.
                    sgd = sgd.with_momentum(Some(
                        MomentumConfig::new()
                            .with_momentum(c.momentum)
                            .with_dampening(0.0),
                    ));
                }
                if c.weight_decay > 0.0 {
                    sgd = sgd.with_weight_decay(Some(WeightDecayConfig::new(c.weight_decay)));
                }
                sgd.init()
            }
        }
    }
}

/// SAM (Foret et al., "Sharpness-Aware Minimization for Efficiently Improving
/// Generalization", ICLR 2021): ε = ρ g/‖g‖, update with ∇L(w+ε).
/// With `adaptive`, ASAM (Kwon et al., ICML 2021): ε = ρ T²g/‖Tg‖, T = |w|.
/// Two forward+backward passes per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamConfig {
    /// Neighbourhood radius ρ. Default 0.05.
    pub rho: f64,
    /// ASAM's scale-invariant perturbation. Default false.
    pub adaptive: bool,
    /// Base optimizer. Default Adam.
    pub base: BaseOptimizerConfig,
}

impl Default for SamConfig {
    fn default() -> Self {
        Self {
            rho: 0.05,
            adaptive: false,
            base: BaseOptimizerConfig::default(),
        }
    }
}

/// When GraphSAM recomputes its perturbation-gradient estimate g_h exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "every")]
pub enum AnchorPolicy {
    /// At the first step of every epoch (the paper). Default.
    #[default]
    Epoch,
    /// At every global step that is a multiple of `steps` (0, k, 2k, ...).
    Steps {
        /// k, the anchor period in steps (≥ 1).
        steps: u64,
    },
}

/// GraphSAM (Wang et al., "Efficient Sharpness-Aware Minimization for Molecular
/// Graph Transformer Models", ICLR 2024).
///
/// Anchor steps set g_h = ∇L(w) exactly (one extra pass); other steps update
/// g_h ← β g_h + (1−β) g_s/‖g_s‖ from the previous step's updating gradient
/// g_s. ε = ρ_e g_h/‖g_h‖, update with g_s = ∇L(w+ε); ρ_e = ρ₀ γ^⌊e/λ⌋.
/// About S+1 forward+backward passes per epoch of S steps.
///
/// The `*_per_tensor`, `radius` and `rho_decay = compounding` options
/// reproduce the authors' PyTorch code, which differs from the paper; they are
/// off by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphSamConfig {
    /// ρ₀, the radius at epoch 0. Default 0.05.
    pub rho: f64,
    /// β, the EMA factor of g_h. Default 0.99.
    pub beta: f64,
    /// γ, the ρ decay factor. Default 0.5.
    pub gamma: f64,
    /// λ, the ρ decay period in epochs. Default 1.
    pub rho_period: u64,
    /// ρ decay rule: `step` (paper, default) or `compounding` (authors' code).
    pub rho_decay: RhoDecay,
    /// When to recompute g_h exactly. Default: first step of each epoch.
    pub anchor: AnchorPolicy,
    /// ASAM-style perturbation ε = ρ T²g_h/‖Tg_h‖, T = |w|. Default false
    /// (the authors' code weights by |w|² by default).
    pub adaptive: bool,
    /// Normalise g_s per parameter tensor, not globally, in the g_h update
    /// (authors' code). Default false.
    pub normalize_per_tensor: bool,
    /// Clip ε per parameter tensor to this radius (authors' code, where it
    /// equals ρ and decays with it). Default none.
    pub radius: Option<f64>,
    /// Reproduce three further details of the authors' code as it ran on a
    /// GPU with torch 1.x (off by default; needs `radius`):
    ///
    /// 1. Between anchors their ε is scaled by ρ/(‖0‖ + 1e-12): the norm is
    ///    taken of gradients already zeroed, so every tensor's ε lands exactly
    ///    on the radius, ε_t = r_e d_t/‖d_t‖ with d = w²⊙g_h (adaptive) or g_h.
    /// 2. With `normalize_per_tensor`, g_s is divided by ‖g_s + 1e-8‖, the
    ///    1e-8 added to every entry (their `torch.norm(g + 1e-8)`).
    /// 3. The gradient at w+ε is multiplied by the loss there,
    ///    L(w+ε)·∇L(w+ε) (their closure calls `loss.backward(loss.detach())`);
    ///    the base optimizer receives, and g_s keeps, this scaled gradient.
    pub reference_quirks: bool,
    /// Base optimizer. Default Adam.
    pub base: BaseOptimizerConfig,
}

impl Default for GraphSamConfig {
    fn default() -> Self {
        Self {
            rho: 0.05,
            beta: 0.99,
            gamma: 0.5,
            rho_period: 1,
            rho_decay: RhoDecay::Step,
            anchor: AnchorPolicy::Epoch,
            adaptive: false,
            normalize_per_tensor: false,
            radius: None,
            reference_quirks: false,
            base: BaseOptimizerConfig::default(),
        }
    }
}

impl GraphSamConfig {
    /// What the authors' released code (GraphSAM `sam.py` of CoMPT-main)
    /// computed when run on a GPU with torch 1.x: |w|² weighting, per-tensor
    /// g_s normalisation by ‖g_s + 1e-8‖, ε clipped per tensor to a radius
    /// (0.05, their default, decaying with ρ) at anchors and set exactly to it
    /// between anchors, the perturbed gradient scaled by its loss, and the
    /// compounding ρ decay. See [`GraphSamConfig::reference_quirks`].
    pub fn reference_code() -> Self {
        Self {
            adaptive: true,
            normalize_per_tensor: true,
            radius: Some(0.05),
            rho_decay: RhoDecay::Compounding,
            reference_quirks: true,
            ..Self::default()
        }
    }
}

/// SAM-k: an exact SAM step at every k-th global step (0, k, 2k, ...), plain
/// base-optimizer steps in between. S + ⌈S/k⌉ passes per S steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamKConfig {
    /// Radius ρ. Default 0.05.
    pub rho: f64,
    /// k, the SAM period in steps. Default 5.
    pub k: u64,
    /// ASAM's scale-invariant perturbation. Default false.
    pub adaptive: bool,
    /// Base optimizer. Default Adam.
    pub base: BaseOptimizerConfig,
}

impl Default for SamKConfig {
    fn default() -> Self {
        Self {
            rho: 0.05,
            k: 5,
            adaptive: false,
            base: BaseOptimizerConfig::default(),
        }
    }
}

/// LookSAM (Liu et al., "Towards Efficient and Scalable Sharpness-Aware
/// Minimization", CVPR 2022). Every k-th step computes the SAM gradient g_s and
/// keeps its component orthogonal to the clean gradient g:
/// g_v = g_s − (g·g_s/‖g‖²) g. Other steps update with g + α (‖g‖/‖g_v‖) g_v.
/// Norms are global (the paper), not per tensor. S + ⌈S/k⌉ passes per S steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookSamConfig {
    /// Radius ρ. Default 0.05.
    pub rho: f64,
    /// k, the SAM period in steps. Default 5 (the paper's choice).
    pub k: u64,
    /// α, the weight of the reused orthogonal component. Default 0.7, the
    /// paper's (ViTs, large batches); on small molecular batches with Adam
    /// it can stop training altogether, where 0.1 does not (README).
    pub alpha: f64,
    /// Base optimizer. Default Adam.
    pub base: BaseOptimizerConfig,
}

impl Default for LookSamConfig {
    fn default() -> Self {
        Self {
            rho: 0.05,
            k: 5,
            alpha: 0.7,
            base: BaseOptimizerConfig::default(),
        }
    }
}

/// AE-SAM (Jiang, Yang, Zhang & Kwok, "An Adaptive Policy to Employ
/// Sharpness-Aware Minimization", ICLR 2023).
///
/// Every step takes g = ∇L(w) and updates EMAs of the mean and variance of
/// ‖g‖²: μ_t = δμ + (1−δ)‖g‖², σ²_t = δσ² + (1−δ)(‖g‖² − μ_t)² (both start
/// at 0). When ‖g‖² ≥ μ_t + c_t σ_t (a sharp region) it takes a SAM step,
/// ε = ρ g/‖g‖ and update with ∇L(w+ε); otherwise a base step with g.
/// c_t = (t/T) λ₁ + (1 − t/T) λ₂ moves linearly from λ₂ at the first step
/// to λ₁ at the last, so SAM steps grow more frequent as training proceeds.
/// T is the run's length, given by [`SharpnessOptimizer::set_total_steps`].
/// S + (number of SAM steps) passes per S steps.
///
/// As in the paper (arXiv 2304.14647, method section): the variance is
/// taken around the *updated* mean μ_t, and the statistic is the squared
/// norm of the clean minibatch gradient ∇L(B_t; w_t), the same g that a SAM
/// step then perturbs along. No official code was found to compare with.
/// With λ₁ = −1, λ₂ = 1 the threshold sweeps μ ± σ symmetrically, so under
/// the paper's normal model of ‖g‖² about half of the steps are SAM steps.
/// Starting μ and σ² at 0 is this crate's choice; the paper's statement of
/// the initial values could not be checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AeSamConfig {
    /// Radius ρ of the SAM steps. Default 0.05.
    pub rho: f64,
    /// δ, the EMA factor of the ‖g‖² statistics. Default 0.9 (the paper).
    pub delta: f64,
    /// λ₁, the threshold factor c_t reached at the last step. Default −1.
    pub lambda1: f64,
    /// λ₂, the threshold factor c_t at the first step. Default 1.
    pub lambda2: f64,
    /// Base optimizer. Default Adam.
    pub base: BaseOptimizerConfig,
}

impl Default for AeSamConfig {
    fn default() -> Self {
        Self {
            rho: 0.05,
            delta: 0.9,
            lambda1: -1.0,
            lambda2: 1.0,
            base: BaseOptimizerConfig::default(),
        }
    }
}

/// RST (Zhao, Zhang & Hu, "Randomized Sharpness-Aware Training for Boosting
/// Computational Efficiency in Deep Learning", arXiv 2203.09962, 2022, AAAI
/// 2023 per the authors' release; SS-SAM in its first version): at step t a
/// Bernoulli trial with probability p_t picks a SAM step (ε = ρ g/‖g‖,
/// update with ∇L(w+ε)) or a base step with g.
///
/// The draw is a hash of (`seed`, t), not a stateful generator, so a run is
/// reproducible and a resumed run draws exactly what the uninterrupted one
/// would have. The authors' JAX training loop (the "hybrid training" of
/// their `gnp` codebase, whose `use_hybrid_training` / `hybrid_config.p`
/// flags the RST release's README also uses) likewise draws Bernoulli(p_t)
/// from a key folded with the 0-based optimizer update count t, taking the
/// sharpness-aware step on success and the plain step otherwise. Expected
/// passes per S steps: S (1 + mean p_t).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RstConfig {
    /// Radius ρ of the SAM steps. Default 0.05.
    pub rho: f64,
    /// How p_t evolves over the run. Default constant 0.5 (see
    /// [`RstSchedule::default`]).
    pub schedule: RstSchedule,
    /// Seed of the per-step draws. Default 0 (graphsam uses the run's seed).
    pub seed: u64,
    /// Base optimizer. Default Adam.
    pub base: BaseOptimizerConfig,
}

impl Default for RstConfig {
    fn default() -> Self {
        Self {
            rho: 0.05,
            schedule: RstSchedule::default(),
            seed: 0,
            base: BaseOptimizerConfig::default(),
        }
    }
}

/// Any optimizer of the family; the CLI names are `adam`, `sam`, `graphsam`,
/// `sam-k`, `looksam`, `ae-sam` and `rst` (see [`FromStr`] and
/// [`OptimizerConfig::name`]).
///
/// Serialises internally tagged: `{"name": "graphsam", "rho": 0.05, ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum OptimizerConfig {
    /// The base Adam alone: one pass per step.
    Adam(AdamConfig),
    /// SAM / ASAM.
    Sam(SamConfig),
    /// GraphSAM.
    #[serde(rename = "graphsam")]
    GraphSam(GraphSamConfig),
    /// SAM every k steps.
    #[serde(rename = "sam-k")]
    SamK(SamKConfig),
    /// LookSAM.
    #[serde(rename = "looksam")]
    LookSam(LookSamConfig),
    /// AE-SAM: SAM only where ‖g‖² is unusually large.
    #[serde(rename = "ae-sam")]
    AeSam(AeSamConfig),
    /// RST: SAM with probability p_t.
    Rst(RstConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::GraphSam(GraphSamConfig::default())
    }
}

/// The CLI names, in the order the family is usually listed.
pub const OPTIMIZER_NAMES: [&str; 7] = [
    "adam", "sam", "graphsam", "sam-k", "looksam", "ae-sam", "rst",
];

impl OptimizerConfig {
    /// The CLI name: one of [`OPTIMIZER_NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::Sam(_) => "sam",
            OptimizerConfig::GraphSam(_) => "graphsam",
            OptimizerConfig::SamK(_) => "sam-k",
            OptimizerConfig::LookSam(_) => "looksam",
            OptimizerConfig::AeSam(_) => "ae-sam",
            OptimizerConfig::Rst(_) => "rst",
        }
    }

    /// The base optimizer's configuration.
    pub fn base(&self) -> BaseOptimizerConfig {
        match self {
            OptimizerConfig::Adam(c) => BaseOptimizerConfig::Adam(c.clone()),
            OptimizerConfig::Sam(c) => c.base.clone(),
            OptimizerConfig::GraphSam(c) => c.base.clone(),
            OptimizerConfig::SamK(c) => c.base.clone(),
            OptimizerConfig::LookSam(c) => c.base.clone(),
            OptimizerConfig::AeSam(c) => c.base.clone(),
            OptimizerConfig::Rst(c) => c.base.clone(),
        }
    }

    /// The same optimizer over another base optimizer. For `Adam` an SGD base
    /// is not representable and is refused.
    pub fn with_base(self, base: BaseOptimizerConfig) -> Result<Self, ConfigError> {
        Ok(match self {
            OptimizerConfig::Adam(_) => match base {
                BaseOptimizerConfig::Adam(a) => OptimizerConfig::Adam(a),
                BaseOptimizerConfig::Sgd(_) => {
                    return Err(ConfigError::new(
                        "adam",
                        "base",
                        "plain Adam cannot take an SGD base",
                    ));
                }
            },
            OptimizerConfig::Sam(c) => OptimizerConfig::Sam(SamConfig { base, ..c }),
            OptimizerConfig::GraphSam(c) => OptimizerConfig::GraphSam(GraphSamConfig { base, ..c }),
            OptimizerConfig::SamK(c) => OptimizerConfig::SamK(SamKConfig { base, ..c }),
            OptimizerConfig::LookSam(c) => OptimizerConfig::LookSam(LookSamConfig { base, ..c }),
            OptimizerConfig::AeSam(c) => OptimizerConfig::AeSam(AeSamConfig { base, ..c }),
            OptimizerConfig::Rst(c) => OptimizerConfig::Rst(RstConfig { base, ..c }),
        })
    }

    /// The starting radius ρ (None for Adam).
    pub fn rho(&self) -> Option<f64> {
        match self {
            OptimizerConfig::Adam(_) => None,
            OptimizerConfig::Sam(c) => Some(c.rho),
            OptimizerConfig::GraphSam(c) => Some(c.rho),
            OptimizerConfig::SamK(c) => Some(c.rho),
            OptimizerConfig::LookSam(c) => Some(c.rho),
            OptimizerConfig::AeSam(c) => Some(c.rho),
            OptimizerConfig::Rst(c) => Some(c.rho),
        }
    }

    /// The same optimizer with RST's draws seeded by `seed`; the others have
    /// no randomness and are returned unchanged.
    pub fn with_seed(self, seed: u64) -> Self {
        match self {
            OptimizerConfig::Rst(c) => OptimizerConfig::Rst(RstConfig { seed, ..c }),
            other => other,
        }
    }

    /// Whether steps need the run's length T
    /// ([`SharpnessOptimizer::set_total_steps`]): AE-SAM's threshold schedule
    /// and RST's non-constant probability schedules do.
    pub fn needs_total_steps(&self) -> bool {
        match self {
            OptimizerConfig::AeSam(_) => true,
            OptimizerConfig::Rst(c) => c.schedule.needs_total_steps(),
            _ => false,
        }
    }

    /// Checks every setting; errors name the field and the allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = self.name();
        self.base().validate(name)?;
        if let Some(rho) = self.rho() {
            check_non_negative(name, "rho", rho)?;
        }
        match self {
            OptimizerConfig::Adam(_) | OptimizerConfig::Sam(_) => Ok(()),
            OptimizerConfig::GraphSam(c) => {
                if !(0.0..1.0).contains(&c.beta) {
                    return Err(ConfigError::new(
                        name,
                        "beta",
                        format!("must be in [0, 1), got {}", c.beta),
                    ));
                }
                if !(c.gamma.is_finite() && c.gamma > 0.0) {
                    return Err(ConfigError::new(
                        name,
                        "gamma",
                        format!("must be > 0, got {}", c.gamma),
                    ));
                }
                if c.rho_period == 0 {
                    return Err(ConfigError::new(name, "rho_period", "must be ≥ 1 epoch"));
                }
                if let AnchorPolicy::Steps { steps: 0 } = c.anchor {
                    return Err(ConfigError::new(name, "anchor.steps", "must be ≥ 1"));
                }
                if let Some(r) = c.radius
                    && !(r.is_finite() && r > 0.0)
                {
                    return Err(ConfigError::new(
                        name,
                        "radius",
                        format!("must be > 0, got {r}"),
                    ));
                }
                if c.reference_quirks && c.radius.is_none() {
                    return Err(ConfigError::new(
                        name,
                        "reference_quirks",
                        "needs `radius` (between anchors the authors' ε is exactly the radius)",
                    ));
                }
                Ok(())
            }
            OptimizerConfig::SamK(c) => check_period(name, c.k),
            OptimizerConfig::LookSam(c) => {
                check_period(name, c.k)?;
                check_non_negative(name, "alpha", c.alpha)
            }
            OptimizerConfig::AeSam(c) => {
                if !(0.0..1.0).contains(&c.delta) {
                    return Err(ConfigError::new(
                        name,
                        "delta",
                        format!("must be in [0, 1), got {}", c.delta),
                    ));
                }
                for (field, v) in [("lambda1", c.lambda1), ("lambda2", c.lambda2)] {
                    if !v.is_finite() {
                        return Err(ConfigError::new(
                            name,
                            field,
                            format!("must be finite, got {v}"),
                        ));
                    }
                }
                Ok(())
            }
            OptimizerConfig::Rst(c) => c.schedule.validate(name),
        }
    }

    /// Builds the optimizer for models of type `M` (validating first).
    pub fn init<M: Module>(&self) -> Result<SharpnessOptimizer<M>, ConfigError> {
        self.validate()?;
        Ok(SharpnessOptimizer::new(self.clone()))
    }
}

fn check_non_negative(
    optimizer: &'static str,
    field: &'static str,
    v: f64,
) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            optimizer,
            field,
            format!("must be a finite number ≥ 0, got {v}"),
        ))
    }
}

fn check_period(optimizer: &'static str, k: u64) -> Result<(), ConfigError> {
    if k == 0 {
        Err(ConfigError::new(optimizer, "k", "must be ≥ 1 step"))
    } else {
        Ok(())
    }
}

/// An optimizer name that is not one of [`OPTIMIZER_NAMES`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "unknown optimizer `{0}`; expected one of adam, sam, graphsam, sam-k, looksam, ae-sam, rst"
)]
pub struct UnknownOptimizer(pub String);

impl FromStr for OptimizerConfig {
    type Err = UnknownOptimizer;

    /// The named optimizer with its default settings (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "adam" => OptimizerConfig::Adam(AdamConfig::default()),
            "sam" => OptimizerConfig::Sam(SamConfig::default()),
            "graphsam" => OptimizerConfig::GraphSam(GraphSamConfig::default()),
            "sam-k" => OptimizerConfig::SamK(SamKConfig::default()),
            "looksam" => OptimizerConfig::LookSam(LookSamConfig::default()),
            "ae-sam" | "aesam" => OptimizerConfig::AeSam(AeSamConfig::default()),
            "rst" => OptimizerConfig::Rst(RstConfig::default()),
            _ => return Err(UnknownOptimizer(s.to_string())),
        })
    }
}

impl fmt::Display for OptimizerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! into_optimizer_config {
    ($($ty:ident => $variant:ident),*) => {$(
        impl From<$ty> for OptimizerConfig {
            fn from(c: $ty) -> Self {
                OptimizerConfig::$variant(c)
            }
        }
        impl $ty {
            /// Builds the optimizer for models of type `M` (validating first).
            pub fn init<M: Module>(&self) -> Result<SharpnessOptimizer<M>, ConfigError> {
                OptimizerConfig::from(self.clone()).init()
            }
        }
    )*};
}

into_optimizer_config!(
    AdamConfig => Adam,
    SamConfig => Sam,
    GraphSamConfig => GraphSam,
    SamKConfig => SamK,
    LookSamConfig => LookSam,
    AeSamConfig => AeSam,
    RstConfig => Rst
);
