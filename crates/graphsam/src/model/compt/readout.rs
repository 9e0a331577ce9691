//! CoMPT's "gru" readout: a bidirectional GRU over the atoms of each
//! molecule, started from a max-pooled summary, then a mean over atoms.
//! Unlike the reference it runs over real atoms only, so a prediction never
//! depends on how much padding its batch has.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::super::fused;
use super::attention::PAD_BIAS;
use super::{mish, xavier_linear};

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
            init_bias: Initializer::Uniform {
                min: -bound,
                max: bound,
            }
            .init([d_model], device),
            forward_input: xavier_linear(d_model, 3 * d_model, device),
            forward_hidden: xavier_linear(d_model, 3 * d_model, device),
            reverse_input: xavier_linear(d_model, 3 * d_model, device),
            reverse_hidden: xavier_linear(d_model, 3 * d_model, device),
            merge: xavier_linear(2 * d_model, d_model, device),
        }
    }

    /// Molecule vectors (B, d) from encoder output `x` (B, L, d) and atom
    /// mask (B, L). Each molecule's real atoms must come first (mask 1…1 0…0),
    /// the layout the batcher writes. Reads the mask back to the host; a
    /// training pass uses [`forward_planned`](Self::forward_planned) with the
    /// plan its input carries.
    ///
    /// # Panics
    /// If a mask row is not of that prefix form.
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
        let [batch, atoms, _] = x.dims();
        let values: Vec<f32> = mask
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("mask converts to f32");
        let counts = super::prefix_counts(&values, batch, atoms);
        let plan = ReadoutPlan::from_counts(&counts, atoms, &x.device());
        self.forward_planned(x, &plan)
    }

    /// [`forward`](Self::forward) with the row bookkeeping prepared on the host.
    pub fn forward_planned(&self, x: Tensor<3>, plan: &ReadoutPlan) -> Tensor<2> {
        let [batch, atoms, d_model] = x.dims();
        let device = x.device();
        let dtype = x.dtype();
        assert_eq!(
            (plan.batch, plan.atoms),
            (batch, atoms),
            "CoMPT readout: plan for {}×{} atoms, encoder output {batch}×{atoms}",
            plan.batch,
            plan.atoms
        );
        if plan.real_atoms == 0 {
            return Tensor::zeros([batch, d_model], (&device, dtype));
        }
        let mask = plan.mask.clone().cast(dtype);

        // Both directions start from the max over real atoms of mish(X + b).
        let mask3 = mask.unsqueeze_dim::<3>(2); // (B, L, 1)
        let pooled = mish(x.clone() + self.init_bias.val().reshape([1, 1, d_model]))
            + (mask3 - 1.0) * -PAD_BIAS;
        let start = pooled.max_dim(1).reshape([batch, d_model]);
        let start = start
            .select(0, plan.order.clone())
            .unsqueeze::<3>()
            .repeat_dim(0, 2); // (2, B, d), longest first

        // Real atoms only, gathered step-major for each direction: at step t
        // the molecules still running are a prefix of the length-sorted
        // batch, so a step is a contiguous block of rows and a finished
        // molecule simply drops out (no padded step ever touches a state).
        let rows = x
            .reshape([batch * atoms, d_model])
            .select(0, plan.gather_rows.clone());
        let rows = rows.reshape([2, plan.real_atoms, d_model]);
        let input_weight = Tensor::stack::<3>(
            vec![
                self.forward_input.weight.val(),
                self.reverse_input.weight.val(),
            ],
            0,
        );
        let gates_in =
            rows.matmul(input_weight) + stacked_bias(&self.forward_input, &self.reverse_input); // (2, N, 3d)
        let hidden_weight = Tensor::stack::<3>(
            vec![
                self.forward_hidden.weight.val(),
                self.reverse_hidden.weight.val(),
            ],
            0,
        );
        let hidden_bias = stacked_bias(&self.forward_hidden, &self.reverse_hidden);

        let outputs = if fused::supported(&gates_in) {
            fused::gru_scan(gates_in, hidden_weight, hidden_bias, start, &plan.active)
        } else {
            scan_steps(gates_in, hidden_weight, hidden_bias, start, plan, d_model)
        }; // (2, N, d), step-major

        // Pair each atom's forward state with its reverse state, merge, and
        // average per molecule.
        let forward_out = outputs
            .clone()
            .narrow(0, 0, 1)
            .reshape([plan.real_atoms, d_model]);
        let reverse_out = outputs
            .narrow(0, 1, 1)
            .reshape([plan.real_atoms, d_model])
            .select(0, plan.reverse_alignment.clone());
        let merged = mish(fused::apply_linear(
            &self.merge,
            Tensor::cat(vec![forward_out, reverse_out], 1),
        )); // (N, d)
        plan.averaging.clone().cast(dtype).matmul(merged)
    }
}

/// The GRU recurrence as composite tensor ops (every backend): `gates_in`
/// (2, N, 3d), weights (2, d, 3d), biases (2, 1, 3d), start (2, B, d) →
/// states (2, N, d), step-major.
fn scan_steps(
    gates_in: Tensor<3>,
    hidden_weight: Tensor<3>,
    hidden_bias: Tensor<3>,
    start: Tensor<3>,
    plan: &ReadoutPlan,
    d_model: usize,
) -> Tensor<3> {
    // Each slice of `gates_in` costs a full-size gradient buffer in the
    // backward pass; slicing in two levels (√T chunks of steps, then
    // steps) cuts that from O(T²) to O(T^1.5) buffers' worth.
    let steps = plan.active.len();
    let chunk = (steps as f64).sqrt().ceil().max(1.0) as usize;
    let mut hidden = start;
    let mut outputs = Vec::with_capacity(steps);
    let mut first = 0;
    while first < steps {
        let last = (first + chunk).min(steps);
        let begin = plan.offsets[first];
        let block = gates_in
            .clone()
            .narrow(1, begin, plan.offsets[last] - begin);
        for t in first..last {
            let active = plan.active[t];
            let input = block.clone().narrow(1, plan.offsets[t] - begin, active);
            if hidden.dims()[1] != active {
                hidden = hidden.narrow(1, 0, active);
            }
            hidden = gru_step(
                hidden,
                input,
                hidden_weight.clone(),
                hidden_bias.clone(),
                d_model,
            );
            outputs.push(hidden.clone());
        }
        first = last;
    }
    Tensor::cat(outputs, 1)
}

/// Input or hidden biases of both directions as (2, 1, 3d).
fn stacked_bias(forward: &Linear, reverse: &Linear) -> Tensor<3> {
    let bias = |l: &Linear| {
        l.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| {
            Tensor::zeros([l.weight.dims()[1]], (&l.weight.device(), l.weight.dtype()))
        })
    };
    let width = forward.weight.dims()[1];
    Tensor::stack::<2>(vec![bias(forward), bias(reverse)], 0).reshape([2, 1, width])
}

/// Which rows each GRU step reads and writes, prepared once per batch on the
/// host (so the passes of an optimizer step share it and never read the
/// device).
#[derive(Debug, Clone)]
pub struct ReadoutPlan {
    batch: usize,
    atoms: usize,
    /// 1.0 for a real atom, 0.0 for padding (B, L).
    mask: Tensor<2>,
    /// Molecules sorted by atom count, longest first.
    order: Tensor<1, Int>,
    /// Molecules still running at each step (a prefix of `order`).
    active: Vec<usize>,
    /// First packed row of each step, plus the total at the end.
    offsets: Vec<usize>,
    /// Rows of the flattened (B·L) encoder output: forward direction's
    /// step-major order, then the reverse direction's.
    gather_rows: Tensor<1, Int>,
    /// For the forward packed position of atom (j, t), the reverse packed
    /// position of the same atom.
    reverse_alignment: Tensor<1, Int>,
    /// (B, N): 1/n_j where packed position belongs to molecule j.
    averaging: Tensor<2>,
    /// N, the number of real atoms in the batch.
    real_atoms: usize,
}

impl ReadoutPlan {
    /// The plan for molecules of `counts[j]` real atoms each, padded to `atoms`.
    pub fn from_counts(counts: &[usize], atoms: usize, device: &Device) -> Self {
        let batch = counts.len();
        let mut order: Vec<usize> = (0..batch).collect();
        order.sort_by_key(|&j| std::cmp::Reverse(counts[j]));
        let longest = counts.iter().copied().max().unwrap_or(0);
        let active: Vec<usize> = (0..longest)
            .map(|t| counts.iter().filter(|&&n| n > t).count())
            .collect();
        let mut offsets = vec![0];
        for a in &active {
            offsets.push(offsets.last().unwrap() + a);
        }
        let real_atoms = *offsets.last().unwrap();
        let mut forward_rows = Vec::with_capacity(real_atoms);
        let mut reverse_rows = Vec::with_capacity(real_atoms);
        let mut reverse_alignment = Vec::with_capacity(real_atoms);
        let mut averaging = vec![0f32; batch * real_atoms];
        for (t, &a) in active.iter().enumerate() {
            for (rank, &j) in order[..a].iter().enumerate() {
                let n = counts[j];
                forward_rows.push((j * atoms + t) as i64);
                reverse_rows.push((j * atoms + n - 1 - t) as i64);
                // Atom t is read by the reverse direction at step n−1−t.
                reverse_alignment.push((offsets[n - 1 - t] + rank) as i64);
                averaging[j * real_atoms + offsets[t] + rank] = 1.0 / n as f32;
            }
        }
        forward_rows.extend(reverse_rows);
        let mask: Vec<f32> = counts
            .iter()
            .flat_map(|&n| (0..atoms).map(move |i| (i < n) as u8 as f32))
            .collect();
        let index = |values: Vec<i64>| {
            let n = values.len();
            Tensor::<1, Int>::from_data(TensorData::new(values, [n]), device)
        };
        Self {
            batch,
            atoms,
            mask: Tensor::from_data(TensorData::new(mask, [batch, atoms]), device),
            order: index(order.into_iter().map(|j| j as i64).collect()),
            active,
            offsets,
            gather_rows: index(forward_rows),
            reverse_alignment: index(reverse_alignment),
            averaging: Tensor::from_data(TensorData::new(averaging, [batch, real_atoms]), device),
            real_atoms,
        }
    }
}

/// One GRU step for both directions at once (PyTorch's equations).
fn gru_step(
    hidden: Tensor<3>,
    input_gates: Tensor<3>,
    hidden_weight: Tensor<3>,
    hidden_bias: Tensor<3>,
    d_model: usize,
) -> Tensor<3> {
    let hidden_gates = hidden.clone().matmul(hidden_weight) + hidden_bias;
    let reset_update = logistic(
        input_gates.clone().narrow(2, 0, 2 * d_model)
            + hidden_gates.clone().narrow(2, 0, 2 * d_model),
    );
    let reset = reset_update.clone().narrow(2, 0, d_model);
    let update = reset_update.narrow(2, d_model, d_model);
    let candidate = (input_gates.narrow(2, 2 * d_model, d_model)
        + reset * hidden_gates.narrow(2, 2 * d_model, d_model))
    .tanh();
    // h' = (1 − z)·n + z·h
    candidate.clone() + update * (hidden - candidate)
}

/// The logistic sigmoid `1/(1+e^(−x))` in the tensor's own precision
/// (burn 0.22's `sigmoid` evaluates in f32 even for f64 tensors, which
/// spoils f64 gradient checks). The clamp keeps `exp` finite, so its
/// gradient never meets ∞·0; σ is within 1e−13 of 0 or 1 beyond ±30.
fn logistic(x: Tensor<3>) -> Tensor<3> {
    (x.clamp(-30.0, 30.0).neg().exp() + 1.0).recip()
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    fn assert_close(name: &str, got: &[f32], want: &[f32], tolerance: f32) {
        assert_eq!(got.len(), want.len(), "{name}: lengths");
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tolerance * scale,
                "{name}[{i}]: fused {g} vs composite {w} (scale {scale})"
            );
        }
    }

    /// The fused CPU scan and the composite ops give the same states and the
    /// same gradients for every input, on uneven molecule lengths (one empty).
    #[test]
    fn fused_scan_matches_the_composite_recurrence() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let d = 8;
        let counts = [6usize, 4, 4, 2, 0, 5];
        let atoms = 6;
        let plan = ReadoutPlan::from_counts(&counts, atoms, &device);
        let n = plan.real_atoms;
        let random = |shape: [usize; 3]| {
            Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let gates_in = random([2, n, 3 * d]);
        let weight = random([2, d, 3 * d]);
        let bias = random([2, 1, 3 * d]);
        let start = random([2, counts.len(), d]);
        let probe = Tensor::<3>::random([2, n, d], Distribution::Normal(0.0, 1.0), &device);
        assert!(fused::supported(&gates_in));

        let fused_out = fused::gru_scan(
            gates_in.clone(),
            weight.clone(),
            bias.clone(),
            start.clone(),
            &plan.active,
        );
        let composite_out = scan_steps(
            gates_in.clone(),
            weight.clone(),
            bias.clone(),
            start.clone(),
            &plan,
            d,
        );
        assert_close(
            "states",
            &host(fused_out.clone()),
            &host(composite_out.clone()),
            1e-5,
        );

        let fused_grads = (fused_out * probe.clone()).sum().backward();
        let composite_grads = (composite_out * probe).sum().backward();
        for (name, tensor) in [
            ("gates_in", &gates_in),
            ("hidden_weight", &weight),
            ("hidden_bias", &bias),
            ("start", &start),
        ] {
            let got = host(tensor.grad(&fused_grads).expect("fused gradient"));
            let want = host(tensor.grad(&composite_grads).expect("composite gradient"));
            assert!(want.iter().any(|v| *v != 0.0), "{name}: zero gradient");
            assert_close(name, &got, &want, 1e-4);
        }
    }
}
