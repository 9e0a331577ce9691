//! CoMPT's "gru" readout: a bidirectional GRU over the atoms of each
//! molecule, started from a max-pooled summary, then a mean over atoms.
//! Unlike the reference it runs over real atoms only, so a prediction never
//! depends on how much padding its batch has.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear};
use burn::tensor::activation::mish;
use burn::tensor::{Device, Tensor};

use super::attention::PAD_BIAS;
use super::xavier_linear;

/// Bidirectional GRU(d→d) readout with PyTorch's gate layout (r, z, n) and
/// parameterisation (separate input and hidden biases).
#[derive(Module, Debug)]
pub struct GruReadout {
    /// `b` in `h_init = max_atoms mish(X + b)`, drawn from U(±1/√d).
    pub init_bias: Param<Tensor<1>>,
    /// Input-to-gates map of the forward direction (d→3d).
    pub forward_input: Linear,
    /// Hidden-to-gates map of the forward direction (d→3d).
    pub forward_hidden: Linear,
    /// Input-to-gates map of the reverse direction (d→3d).
    pub reverse_input: Linear,
    /// Hidden-to-gates map of the reverse direction (d→3d).
    pub reverse_hidden: Linear,
    /// Linear(2d→d) applied to both directions' outputs before the mean.
    pub merge: Linear,
}

impl GruReadout {
    /// A fresh readout; weights Xavier-uniform, biases as PyTorch's defaults.
    pub fn new(d_model: usize, device: &Device) -> Self {
        let bound = 1.0 / (d_model as f64).sqrt();
        Self {
            init_bias: Initializer::Uniform { min: -bound, max: bound }.init([d_model], device),
            forward_input: xavier_linear(d_model, 3 * d_model, device),
            forward_hidden: xavier_linear(d_model, 3 * d_model, device),
            reverse_input: xavier_linear(d_model, 3 * d_model, device),
            reverse_hidden: xavier_linear(d_model, 3 * d_model, device),
            merge: xavier_linear(2 * d_model, d_model, device),
        }
    }

    /// Molecule vectors (B, d) from encoder output `x` (B, L, d) and atom mask (B, L).
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
        let [batch, atoms, d_model] = x.dims();
        let mask3 = mask.clone().unsqueeze_dim::<3>(2); // (B, L, 1)
        let x = x * mask3.clone();

        // Both directions start from the max over real atoms of mish(X + b).
        let pooled = mish(x.clone() + self.init_bias.val().reshape([1, 1, d_model]))
            + (mask3.clone() - 1.0) * -PAD_BIAS;
        let start = pooled.max_dim(1).reshape([1, batch, d_model]).repeat_dim(0, 2); // (2, B, d)

        // Time-major so each step reads a contiguous block; the reverse
        // direction reads the sequence flipped.
        let steps = x.swap_dims(0, 1); // (L, B, d)
        let gates_in = Tensor::stack::<4>(
            vec![
                self.forward_input.forward(steps.clone()),
                self.reverse_input.forward(steps).flip([0]),
            ],
            1,
        ); // (L, 2, B, 3d)
        let step_mask = mask.clone().swap_dims(0, 1).unsqueeze_dim::<3>(2); // (L, B, 1)
        let step_mask = Tensor::stack::<4>(vec![step_mask.clone(), step_mask.flip([0])], 1); // (L, 2, B, 1)

        let hidden_weight = Tensor::stack::<3>(
            vec![self.forward_hidden.weight.val(), self.reverse_hidden.weight.val()],
            0,
        ); // (2, d, 3d)
        let hidden_bias = Tensor::stack::<2>(
            vec![
                self.forward_hidden.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| Tensor::zeros([3 * d_model], &hidden_weight.device())),
                self.reverse_hidden.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| Tensor::zeros([3 * d_model], &hidden_weight.device())),
            ],
            0,
        )
        .reshape([2, 1, 3 * d_model]);

        // Every slice of `gates_in` costs a full-size gradient buffer in the
        // backward pass; slicing in two levels (√L chunks, then steps) cuts
        // that from O(L²) to O(L^1.5) buffers' worth.
        let chunk = (atoms as f64).sqrt().ceil().max(1.0) as usize;
        let mut hidden = start;
        let mut outputs = Vec::with_capacity(atoms);
        let mut begin = 0;
        while begin < atoms {
            let len = chunk.min(atoms - begin);
            let block = gates_in.clone().narrow(0, begin, len);
            let block_mask = step_mask.clone().narrow(0, begin, len);
            for i in 0..len {
                let input = block.clone().narrow(0, i, 1).reshape([2, batch, 3 * d_model]);
                let keep = block_mask.clone().narrow(0, i, 1).reshape([2, batch, 1]);
                hidden = gru_step(hidden, input, hidden_weight.clone(), hidden_bias.clone(), keep, d_model);
                outputs.push(hidden.clone());
            }
            begin += len;
        }

        let outputs = Tensor::stack::<4>(outputs, 0); // (L, 2, B, d)
        let forward_out = outputs.clone().narrow(1, 0, 1).reshape([atoms, batch, d_model]);
        let reverse_out = outputs.narrow(1, 1, 1).reshape([atoms, batch, d_model]).flip([0]);
        let merged = mish(self.merge.forward(Tensor::cat(vec![forward_out, reverse_out], 2))); // (L, B, d)

        let step_mask = mask.clone().swap_dims(0, 1).unsqueeze_dim::<3>(2);
        let counts = mask.sum_dim(1).clamp_min(1.0); // (B, 1)
        (merged * step_mask).sum_dim(0).reshape([batch, d_model]) / counts
    }
}

/// One GRU step for both directions at once; `keep` (2, B, 1) is 1 where the
/// step is a real atom and 0 where it is padding (the state passes through).
fn gru_step(
    hidden: Tensor<3>,
    input_gates: Tensor<3>,
    hidden_weight: Tensor<3>,
    hidden_bias: Tensor<3>,
    keep: Tensor<3>,
    d_model: usize,
) -> Tensor<3> {
    let hidden_gates = hidden.clone().matmul(hidden_weight) + hidden_bias;
    let reset_update = logistic(
        input_gates.clone().narrow(2, 0, 2 * d_model) + hidden_gates.clone().narrow(2, 0, 2 * d_model),
    );
    let reset = reset_update.clone().narrow(2, 0, d_model);
    let update = reset_update.narrow(2, d_model, d_model);
    let candidate = (input_gates.narrow(2, 2 * d_model, d_model) + reset * hidden_gates.narrow(2, 2 * d_model, d_model)).tanh();
    // h' = (1 − z)·n + z·h, applied only where `keep` is 1.
    let next = candidate.clone() + update * (hidden.clone() - candidate);
    hidden.clone() + keep * (next - hidden)
}

/// The logistic sigmoid as `(1 + tanh(x/2))/2`: exact, and computed in the
/// tensor's own precision (burn 0.22's `sigmoid` evaluates in f32 even for
/// f64 tensors, which spoils f64 gradient checks).
fn logistic(x: Tensor<3>) -> Tensor<3> {
    (x * 0.5).tanh() * 0.5 + 0.5
}
