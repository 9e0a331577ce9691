//! Schedules: the NoamLR learning rate (per step) and the GraphSAM ρ decay (per epoch).

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// NoamLR as chemprop uses it: linear warm-up from `init_lr` to `max_lr` over
/// `warmup_epochs`, then exponential decay to `final_lr` at the last epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoamLrConfig {
    /// Learning rate of the first step. Default 1e-4.
    pub init_lr: f64,
    /// Learning rate at the end of warm-up. Default 1e-3.
    pub max_lr: f64,
    /// Learning rate reached at the last step of the last epoch. Default 1e-4.
    pub final_lr: f64,
    /// Epochs of linear warm-up (may be fractional, as in chemprop). Default 2.
    pub warmup_epochs: f64,
}

impl Default for NoamLrConfig {
    fn default() -> Self {
        Self {
            init_lr: 1e-4,
            max_lr: 1e-3,
            final_lr: 1e-4,
            warmup_epochs: 2.0,
        }
    }
}

/// The NoamLR schedule over a fixed number of steps; see [`NoamLrConfig`].
///
/// `lr_at(t)` is the learning rate of the step that follows `t` completed
/// steps, so `lr_at(0) == init_lr` (chemprop sets the rate after each step).
#[derive(Clone, Debug, PartialEq)]
pub struct NoamLr {
    config: NoamLrConfig,
    warmup_steps: u64,
    total_steps: u64,
    linear_increment: f64,
    exponential_gamma: f64,
}

impl NoamLr {
    /// A schedule for `total_epochs` epochs of `steps_per_epoch` steps.
    ///
    /// Errors on non-positive or non-finite rates, negative warm-up, zero steps
    /// per epoch or zero epochs.
    pub fn new(
        config: NoamLrConfig,
        steps_per_epoch: usize,
        total_epochs: usize,
    ) -> Result<Self, ConfigError> {
        for (field, value) in [
            ("init_lr", config.init_lr),
            ("max_lr", config.max_lr),
            ("final_lr", config.final_lr),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError::new(
                    "noam",
                    field,
                    format!("must be a positive finite number, got {value}"),
                ));
            }
        }
        if !(config.warmup_epochs.is_finite() && config.warmup_epochs >= 0.0) {
            return Err(ConfigError::new(
                "noam",
                "warmup_epochs",
                format!("must be ≥ 0, got {}", config.warmup_epochs),
            ));
        }
        if steps_per_epoch == 0 {
            return Err(ConfigError::new(
                "noam",
                "steps_per_epoch",
                "must be ≥ 1 (is the training set empty?)",
            ));
        }
        if total_epochs == 0 {
            return Err(ConfigError::new("noam", "total_epochs", "must be ≥ 1"));
        }
        let total_steps = (total_epochs as u64) * (steps_per_epoch as u64);
        // chemprop: int(warmup_epochs * steps_per_epoch); never beyond the run.
        let warmup_steps =
            ((config.warmup_epochs * steps_per_epoch as f64) as u64).min(total_steps);
        let linear_increment = if warmup_steps > 0 {
            (config.max_lr - config.init_lr) / warmup_steps as f64
        } else {
            0.0
        };
        let decay_steps = total_steps - warmup_steps;
        let exponential_gamma = if decay_steps > 0 {
            (config.final_lr / config.max_lr).powf(1.0 / decay_steps as f64)
        } else {
            1.0
        };
        Ok(Self {
            config,
            warmup_steps,
            total_steps,
            linear_increment,
            exponential_gamma,
        })
    }

    /// Learning rate for the step after `global_step` completed steps.
    pub fn lr_at(&self, global_step: u64) -> f64 {
        let c = &self.config;
        if self.warmup_steps == 0 && global_step == 0 {
            // No warm-up: the decay starts from max_lr.
            c.max_lr
        } else if global_step <= self.warmup_steps {
            c.init_lr + global_step as f64 * self.linear_increment
        } else if global_step <= self.total_steps {
            c.max_lr
                * self
                    .exponential_gamma
                    .powf((global_step - self.warmup_steps) as f64)
        } else {
            c.final_lr
        }
    }

    /// Steps of warm-up.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps
    }

    /// Steps in the whole run.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    /// The configuration this schedule was built from.
    pub fn config(&self) -> &NoamLrConfig {
        &self.config
    }
}

/// How GraphSAM's radius ρ decays over epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RhoDecay {
    /// The paper's StepLR: ρ_e = ρ₀ γ^⌊e/λ⌋.
    #[default]
    Step,
    /// The authors' code: every λ epochs (at epoch e = mλ) ρ ← ρ γ^(e/λ), which
    /// compounds to ρ_e = ρ₀ γ^(m(m+1)/2) with m = ⌊e/λ⌋. Decays much faster.
    Compounding,
}

/// The ρ schedule of GraphSAM: a start value, a factor γ, a period λ in epochs.
#[derive(Clone, Debug, PartialEq)]
pub struct RhoSchedule {
    /// ρ₀.
    pub rho0: f64,
    /// γ, the factor per period.
    pub gamma: f64,
    /// λ, the period in epochs (≥ 1).
    pub period: u64,
    /// Which decay rule.
    pub decay: RhoDecay,
}

impl RhoSchedule {
    /// ρ at the start of `epoch` under [`RhoDecay::Step`], in closed form.
    pub fn step_rho(&self, epoch: u64) -> f64 {
        self.rho0 * self.gamma.powi((epoch / self.period) as i32)
    }

    /// Advances ρ from the state after `done_epoch` (None: nothing applied yet)
    /// to the start of `epoch`, applying each missed decay in order.
    ///
    /// Step decay is computed in closed form; compounding decay multiplies the
    /// current ρ by γ^m at each epoch mλ, as the authors' code does, so a
    /// resumed run (ρ restored from state) continues exactly.
    pub fn advance(&self, rho: f64, done_epoch: Option<u64>, epoch: u64) -> f64 {
        match self.decay {
            RhoDecay::Step => self.step_rho(epoch),
            RhoDecay::Compounding => {
                let first = done_epoch.map_or(0, |e| e + 1);
                let mut rho = rho;
                for e in first..=epoch {
                    if e % self.period == 0 {
                        rho *= self.gamma.powf((e / self.period) as f64);
                    }
                }
                rho
            }
        }
    }
}

/// How RST's probability p_t of a SAM step evolves over a run of T steps.
///
/// The paper studies four families of scheduling function: constant,
/// piecewise, linear and trigonometric. Their exact parameterisations in
/// the paper could not be checked here, so the forms below are general:
/// each runs from a start to an end value over the run, with f = t/T (t the
/// 0-based step, clamped to [0, 1]); increasing and decreasing variants are
/// both expressible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RstSchedule {
    /// p_t = p. Needs no T.
    Constant {
        /// The probability of a SAM step.
        p: f64,
    },
    /// p_t = start + (end − start) f.
    Linear {
        /// p at the first step.
        start: f64,
        /// p approached at the last step.
        end: f64,
    },
    /// p_t = start while f < `switch_at`, then end.
    Piecewise {
        /// p before the switch.
        start: f64,
        /// p after the switch.
        end: f64,
        /// Where in the run (fraction of T) p switches. Default 0.5.
        #[serde(default = "half")]
        switch_at: f64,
    },
    /// p_t = end + (start − end)(1 + cos πf)/2: a half cosine from start to end.
    Cosine {
        /// p at the first step.
        start: f64,
        /// p approached at the last step.
        end: f64,
    },
}

fn half() -> f64 {
    0.5
}

impl Default for RstSchedule {
    /// Constant 0.5: half the steps are SAM steps, which is the "saving 50%
    /// extra computation cost" of the paper's abstract. The authors' JAX
    /// base config leaves hybrid training off (p = 0); the RST README's
    /// example run uses a constant p = 0.6.
    fn default() -> Self {
        RstSchedule::Constant { p: 0.5 }
    }
}

impl RstSchedule {
    /// Whether p_t depends on the run's length T.
    pub fn needs_total_steps(&self) -> bool {
        !matches!(self, RstSchedule::Constant { .. })
    }

    /// p_t for 0-based step `step` of `total` (None when T is needed but unknown).
    pub fn probability(&self, step: u64, total: Option<u64>) -> Option<f64> {
        if let RstSchedule::Constant { p } = self {
            return Some(*p);
        }
        let f = run_fraction(step, total?);
        Some(match *self {
            RstSchedule::Constant { p } => p,
            RstSchedule::Linear { start, end } => start + (end - start) * f,
            RstSchedule::Piecewise {
                start,
                end,
                switch_at,
            } => {
                if f < switch_at {
                    start
                } else {
                    end
                }
            }
            RstSchedule::Cosine { start, end } => {
                end + (start - end) * 0.5 * (1.0 + (std::f64::consts::PI * f).cos())
            }
        })
    }

    /// Checks that every probability lies in [0, 1].
    pub(crate) fn validate(&self, optimizer: &'static str) -> Result<(), ConfigError> {
        let values: Vec<(&'static str, f64)> = match *self {
            RstSchedule::Constant { p } => vec![("schedule.p", p)],
            RstSchedule::Linear { start, end } | RstSchedule::Cosine { start, end } => {
                vec![("schedule.start", start), ("schedule.end", end)]
            }
            RstSchedule::Piecewise {
                start,
                end,
                switch_at,
            } => vec![
                ("schedule.start", start),
                ("schedule.end", end),
                ("schedule.switch_at", switch_at),
            ],
        };
        for (field, v) in values {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::new(
                    optimizer,
                    field,
                    format!("must be in [0, 1], got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// t/T clamped to [0, 1]; 0 for an empty run.
fn run_fraction(step: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (step as f64 / total as f64).min(1.0)
    }
}

/// AE-SAM's threshold factor c_t = (t/T) λ₁ + (1 − t/T) λ₂ at 0-based step t of T.
pub fn ae_sam_threshold(lambda1: f64, lambda2: f64, step: u64, total: u64) -> f64 {
    let f = run_fraction(step, total);
    f * lambda1 + (1.0 - f) * lambda2
}

/// The uniform number in [0, 1) that RST compares with p_t at `step`: a
/// SplitMix64 hash of (seed, step), so any step's draw is known without
/// replaying the ones before it (resumed runs draw the same).
pub fn rst_draw(seed: u64, step: u64) -> f64 {
    let mixed = splitmix64(seed ^ splitmix64(step.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    // The top 53 bits give every double in [0, 1) on the 2⁻⁵³ grid.
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mix.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
