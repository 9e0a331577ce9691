//! How sharp is a minimum: the top Hessian eigenvalue, ε-sharpness, and the
//! random directions of a loss-landscape plot, for any burn module.
//!
//! Everything here takes the same loss-and-gradient closure as
//! [`SharpnessOptimizer::step`](crate::SharpnessOptimizer::step) — one call
//! is one forward and one backward pass — or a loss-only closure, and
//! counts the passes it spends. The closure should be deterministic (no
//! dropout, fixed batches): a noisy loss makes finite differences and
//! ascent steps measure the noise.
//!
//! burn has no double backward, so Hessian-vector products are central
//! finite differences of gradients, `Hv ≈ (∇L(w+hv) − ∇L(w−hv)) / 2h` for a
//! unit vector v. The error is O(h²) from third derivatives and
//! O(ε_f32 · ‖∇L‖ / h) from rounding; the default
//! `h = 10⁻³ · max(1, ‖w‖)` keeps both far below the eigenvalue for networks
//! whose weights are O(1) per entry (on a quadratic the difference is exact
//! for every h).

use burn::module::Module;
use burn::optim::GradientsParams;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::param_vector::{NORM_EPSILON, ParamVector};

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum SharpnessError<E> {
    /// The caller's loss closure failed.
    #[error("{0}")]
    Closure(E),
    /// The closure returned gradients for no parameter.
    #[error("the loss has no gradient with respect to any parameter of the model")]
    NoParameters,
    /// The loss or a gradient was NaN or infinite.
    #[error("the loss is not finite at {what} (value {value})")]
    NonFinite {
        /// Where it was evaluated.
        what: &'static str,
        /// The value met.
        value: f64,
    },
    /// A setting is out of range.
    #[error("invalid setting `{field}`: {problem}")]
    Setting {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// The finite-difference step h of a Hessian-vector product.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FiniteDifferenceStep {
    /// h = r · max(1, ‖w‖): scales with the weights (default r = 10⁻³).
    Relative(f64),
    /// A fixed h.
    Absolute(f64),
}

impl Default for FiniteDifferenceStep {
    fn default() -> Self {
        FiniteDifferenceStep::Relative(1e-3)
    }
}

/// Settings of [`top_hessian_eigenvalue`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PowerIteration {
    /// At most this many Hessian-vector products (two passes each).
    pub max_iterations: usize,
    /// Stop when successive estimates differ by at most this fraction.
    pub tolerance: f64,
    /// The finite-difference step.
    pub step: FiniteDifferenceStep,
    /// Seed of the random starting vector.
    pub seed: u64,
}

impl Default for PowerIteration {
    fn default() -> Self {
        Self {
            max_iterations: 20,
            tolerance: 1e-3,
            step: FiniteDifferenceStep::default(),
            seed: 0,
        }
    }
}

/// The outcome of [`top_hessian_eigenvalue`].
#[derive(Clone, Debug, PartialEq)]
pub struct EigenEstimate {
    /// The estimate: the Rayleigh quotient vᵀHv of the last iterate (the
    /// eigenvalue of largest magnitude; at a minimum, the largest).
    pub eigenvalue: f64,
    /// The estimate after each iteration.
    pub history: Vec<f64>,
    /// Whether the tolerance was met before `max_iterations`.
    pub converged: bool,
    /// ‖Hv − λv‖ / |λ| at the last iterate: how far v is from an eigenvector.
    pub residual: f64,
    /// The finite-difference step h used.
    pub step: f64,
    /// The loss at w.
    pub loss: f64,
    /// Forward+backward passes spent.
    pub passes: u64,
}

/// Settings of [`epsilon_sharpness`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AscentOptions {
    /// Radius ρ of the L2 ball around w.
    pub rho: f64,
    /// Projected gradient-ascent steps after the start.
    pub steps: usize,
    /// `None`: start along the gradient at w (SAM's ε); `Some(seed)`: start
    /// at a random point of the sphere (needed where ∇L(w) = 0).
    pub random_start: Option<u64>,
}

impl Default for AscentOptions {
    fn default() -> Self {
        Self {
            rho: 0.05,
            steps: 5,
            random_start: None,
        }
    }
}

/// The outcome of [`epsilon_sharpness`].
#[derive(Clone, Debug, PartialEq)]
pub struct SharpnessEstimate {
    /// L(w).
    pub loss: f64,
    /// The largest L(w + ε) found with ‖ε‖ ≤ ρ.
    pub max_loss: f64,
    /// max_loss − loss: the ε-sharpness.
    pub sharpness: f64,
    /// L(w + ε) at every ascent iterate, the start first.
    pub ascent: Vec<f64>,
    /// Forward+backward passes spent.
    pub passes: u64,
}

/// Calls the closure, turning its gradients into a [`ParamVector`].
struct Evaluator<'a, M, F> {
    model: &'a M,
    grad_fn: F,
    passes: u64,
}

impl<'a, M: Module, E, F> Evaluator<'a, M, F>
where
    F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
{
    /// The evaluator with its first pass done: the loss and gradient at the
    /// weights, refused if the loss has no gradient.
    fn start(model: &'a M, grad_fn: F) -> Result<(Self, f64, ParamVector), SharpnessError<E>> {
        let mut eval = Evaluator {
            model,
            grad_fn,
            passes: 0,
        };
        let (loss, gradient) = eval.at(None, "the weights w")?;
        if gradient.is_empty() {
            return Err(SharpnessError::NoParameters);
        }
        Ok((eval, loss, gradient))
    }

    fn at(
        &mut self,
        shift: Option<&ParamVector>,
        what: &'static str,
    ) -> Result<(f64, ParamVector), SharpnessError<E>> {
        self.passes += 1;
        let moved;
        let model = match shift {
            Some(s) => {
                moved = s.perturb(self.model);
                &moved
            }
            None => self.model,
        };
        let (loss, mut grads) = (self.grad_fn)(model).map_err(SharpnessError::Closure)?;
        if !loss.is_finite() {
            return Err(SharpnessError::NonFinite {
                what,
                value: loss as f64,
            });
        }
        Ok((loss as f64, ParamVector::from_gradients(model, &mut grads)))
    }
}

/// A vector of independent N(0, 1) entries with the slots of `like`,
/// reproducible from `seed`.
pub fn gaussian_like(like: &ParamVector, seed: u64) -> ParamVector {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    like.map_host(|_, _, values| {
        let mut out = Vec::with_capacity(values.len());
        while out.len() < values.len() {
            // Box–Muller: two uniforms give two independent normals.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32);
            if out.len() < values.len() {
                out.push((r * t.sin()) as f32);
            }
        }
        out
    })
}

/// Li et al.'s filter normalisation ("Visualizing the Loss Landscape of
/// Neural Nets", 2018): each filter of `direction` rescaled to the norm of
/// the same filter of the weights `weights`, so a step of 1 along the
/// direction moves every filter by its own size, whatever the layer's scale.
///
/// A filter is the slice of a parameter along its last axis: an output unit
/// of burn's `Linear` (weights stored d_in × d_out), one row's worth of
/// entries at the same last index for any tensor of rank ≥ 2. Rank-1
/// parameters (biases, norm scales) get a zero direction, as in the paper.
pub fn filter_normalized(direction: &ParamVector, weights: &ParamVector) -> ParamVector {
    let w = weights.host_values();
    direction.map_host(|i, shape, mut d| {
        if shape.len() < 2 {
            return vec![0.0; d.len()];
        }
        let width = *shape.last().unwrap_or(&1);
        let w = &w[i];
        for unit in 0..width {
            let (mut dn, mut wn) = (0.0f64, 0.0f64);
            for k in (unit..d.len()).step_by(width) {
                dn += (d[k] as f64).powi(2);
                wn += (w[k] as f64).powi(2);
            }
            let factor = wn.sqrt() / (dn.sqrt() + NORM_EPSILON);
            for k in (unit..d.len()).step_by(width) {
                d[k] = (d[k] as f64 * factor) as f32;
            }
        }
        d
    })
}

/// The Hessian eigenvalue of largest magnitude at the model's weights, by
/// power iteration on finite-difference Hessian-vector products.
pub fn top_hessian_eigenvalue<M, E, F>(
    model: &M,
    grad_fn: F,
    options: &PowerIteration,
) -> Result<EigenEstimate, SharpnessError<E>>
where
    M: Module,
    F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
{
    if options.max_iterations == 0 {
        return Err(SharpnessError::Setting {
            field: "max_iterations",
            problem: "must be at least 1".into(),
        });
    }
    let (mut eval, loss, gradient) = Evaluator::start(model, grad_fn)?;
    let h = match options.step {
        FiniteDifferenceStep::Relative(r) => {
            r * ParamVector::weights_like(model, &gradient).norm().max(1.0)
        }
        FiniteDifferenceStep::Absolute(h) => h,
    };
    if !(h.is_finite() && h > 0.0) {
        return Err(SharpnessError::Setting {
            field: "step",
            problem: format!("the finite-difference step must be positive, got {h}"),
        });
    }
    let start = gaussian_like(&gradient, options.seed);
    let mut v = start.scale(1.0 / (start.norm() + NORM_EPSILON));
    let mut history = Vec::new();
    let mut converged = false;
    let mut residual = f64::NAN;
    for _ in 0..options.max_iterations {
        let (_, plus) = eval.at(Some(&v.scale(h)), "w + h·v")?;
        let (_, minus) = eval.at(Some(&v.scale(-h)), "w − h·v")?;
        let hv = plus.linear_combination(1.0 / (2.0 * h), &minus, -1.0 / (2.0 * h));
        let lambda = v.dot(&hv).map_or(0.0, |t| t.into_scalar::<f32>() as f64);
        let hv_norm = hv.norm();
        if !lambda.is_finite() || !hv_norm.is_finite() {
            return Err(SharpnessError::NonFinite {
                what: "a Hessian-vector product",
                value: lambda,
            });
        }
        residual = v.linear_combination(-lambda, &hv, 1.0).norm() / lambda.abs().max(NORM_EPSILON);
        let previous = history.last().copied();
        history.push(lambda);
        if hv_norm == 0.0 {
            // The loss is flat along v to rounding: the spectrum there is 0.
            converged = true;
            residual = 0.0;
            break;
        }
        if let Some(p) = previous
            && (lambda - p).abs() <= options.tolerance * lambda.abs()
        {
            converged = true;
            break;
        }
        v = hv.scale(1.0 / hv_norm);
    }
    Ok(EigenEstimate {
        eigenvalue: *history.last().unwrap_or(&0.0),
        history,
        converged,
        residual,
        step: h,
        loss,
        passes: eval.passes,
    })
}

/// ε-sharpness: the largest loss increase within the L2 ball of radius ρ
/// around the weights, max_{‖ε‖≤ρ} L(w+ε) − L(w), estimated by projected
/// gradient ascent with normalised steps of length ρ (each projected back to
/// the sphere, where the maximum of a locally convex loss lies). The
/// estimate is a lower bound: the ascent may miss the true maximum.
pub fn epsilon_sharpness<M, E, F>(
    model: &M,
    grad_fn: F,
    options: &AscentOptions,
) -> Result<SharpnessEstimate, SharpnessError<E>>
where
    M: Module,
    F: FnMut(&M) -> Result<(f32, GradientsParams), E>,
{
    if !(options.rho.is_finite() && options.rho > 0.0) {
        return Err(SharpnessError::Setting {
            field: "rho",
            problem: format!("the radius must be positive, got {}", options.rho),
        });
    }
    let rho = options.rho;
    let (mut eval, loss, gradient) = Evaluator::start(model, grad_fn)?;
    let start = match options.random_start {
        Some(seed) => gaussian_like(&gradient, seed),
        None => gradient,
    };
    let start_norm = start.norm();
    if start_norm == 0.0 {
        return Err(SharpnessError::Setting {
            field: "random_start",
            problem: "the gradient at w is zero, so it gives no direction: start at a random point"
                .into(),
        });
    }
    let mut epsilon = start.scale(rho / start_norm);
    let mut ascent = Vec::with_capacity(options.steps + 1);
    for step in 0..=options.steps {
        let (value, grad) = eval.at(Some(&epsilon), "w + ε")?;
        ascent.push(value);
        if step == options.steps {
            break;
        }
        let g_norm = grad.norm();
        if g_norm == 0.0 || !g_norm.is_finite() {
            break;
        }
        let moved = epsilon.linear_combination(1.0, &grad, rho / g_norm);
        let moved_norm = moved.norm();
        epsilon = moved.scale(rho / moved_norm.max(rho));
    }
    let max_loss = ascent.iter().copied().fold(loss, f64::max);
    Ok(SharpnessEstimate {
        loss,
        max_loss,
        sharpness: max_loss - loss,
        ascent,
        passes: eval.passes,
    })
}
