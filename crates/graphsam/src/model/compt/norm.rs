//! The two normalisations CoMPT chooses between per dataset. Both act on the
//! last (feature) dimension of one atom at a time, so padding never leaks
//! into a real atom.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::super::fused;

/// Which normalisation a CoMPT model uses everywhere (encoder and head).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormKind {
    /// Layer norm with the unbiased standard deviation, `a·(x−μ)/(σ+1e−6)+b`.
    LayerNorm,
    /// Scale norm `g·x/max(‖x‖, 1e−5)` with a single learnt gain (Nguyen & Salazar 2019).
    ScaleNorm,
}

/// Layer norm as the CoMPT reference writes it: the *unbiased* standard
/// deviation and the epsilon added to σ, not to the variance (unlike burn's
/// and PyTorch's built-in layer norms).
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Per-feature gain `a`, initialised to 1.
    pub gain: Param<Tensor<1>>,
    /// Per-feature shift `b`, initialised to 0.
    pub shift: Param<Tensor<1>>,
}

/// Scale norm: rescales each feature vector to a learnt length.
#[derive(Module, Debug)]
pub struct ScaleNorm {
    /// The learnt length `g` (one scalar), initialised to √d.
    pub scale: Param<Tensor<1>>,
}

/// One normalisation module of the kind the dataset asks for.
#[derive(Module, Debug)]
pub enum Norm {
    /// See [`LayerNorm`].
    Layer(LayerNorm),
    /// See [`ScaleNorm`].
    Scale(ScaleNorm),
}

impl Norm {
    /// A fresh norm over `d_model` features.
    pub fn new(kind: NormKind, d_model: usize, device: &Device) -> Self {
        match kind {
            NormKind::LayerNorm => Norm::Layer(LayerNorm {
                gain: Param::from_tensor(Tensor::ones([d_model], device)),
                shift: Param::from_tensor(Tensor::zeros([d_model], device)),
            }),
            NormKind::ScaleNorm => Norm::Scale(ScaleNorm {
                scale: Param::from_tensor(Tensor::from_floats([(d_model as f32).sqrt()], device)),
            }),
        }
    }

    /// Normalise over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Norm::Layer(norm) => norm.forward(x),
            Norm::Scale(norm) => norm.forward(x),
        }
    }
}

/// Reshape a per-feature vector so it broadcasts over the leading dims of a rank-`D` tensor.
fn broadcast_last<const D: usize>(v: Tensor<1>) -> Tensor<D> {
    let n = v.dims()[0];
    let mut shape = [1usize; D];
    shape[D - 1] = n;
    v.reshape(shape)
}

impl LayerNorm {
    /// `a·(x−μ)/(σ+1e−6)+b` with σ the unbiased standard deviation (one
    /// fused kernel on the flex CPU backend).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if fused::supported(&x) {
            return fused::layer_norm(x, self.gain.val(), self.shift.val());
        }
        self.forward_composite(x)
    }

    /// [`forward`](Self::forward) as composite tensor ops (every backend).
    pub fn forward_composite<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let d = x.dims()[D - 1];
        let centered = x.clone() - x.mean_dim(D - 1);
        let variance = centered.clone().square().sum_dim(D - 1) / (d.max(2) - 1) as f64;
        // The tiny floor keeps the square root's gradient finite for a
        // constant row (its value is unchanged in f32 for any real row).
        let sigma = (variance + 1e-20).sqrt();
        centered / (sigma + 1e-6) * broadcast_last::<D>(self.gain.val())
            + broadcast_last::<D>(self.shift.val())
    }
}

impl ScaleNorm {
    /// `g·x/max(‖x‖, 1e−5)`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        // Clamping the squared norm at 1e−10 is max(‖x‖, 1e−5) and keeps
        // the square root's gradient finite at x = 0.
        let length = x.clone().square().sum_dim(D - 1).clamp_min(1e-10).sqrt();
        x / length * broadcast_last::<D>(self.scale.val())
    }
}
