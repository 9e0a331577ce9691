//! Fused CPU kernels for the hot spots of the backbones, plugged into burn
//! through its backend-extension API with hand-written backward passes.
//!
//! burn runs every tensor op as its own pass over memory and records it in
//! the autodiff graph, so a recurrence of ~100 small steps (CoMPT's GRU
//! readout) costs ~1,500 ops forward and more backward, most of them on a
//! single core. A fused kernel does one step in one sweep, runs the two GRU
//! directions on two threads, and computes the weight gradient as one large
//! product at the end. The math is the composite's; tests check both against
//! each other, values and gradients.
//!
//! The kernels exist for burn's flex CPU backend in f32 (with and without
//! autodiff). [`supported`] says whether a tensor can take them; callers
//! keep the composite tensor code for every other backend and dtype.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};

/// True when `tensor` lives on the flex CPU backend (with or without
/// autodiff) in f32, where the fused kernels run.
pub fn supported<const D: usize>(tensor: &Tensor<D>) -> bool {
    tensor.dtype() == DType::F32
        && matches!(
            tensor.device().inner().as_dispatch(),
            DispatchDevice::Flex(_)
        )
}

/// The operations with fused kernels.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// A bidirectional GRU recurrence over length-sorted, step-major packed
    /// rows (PyTorch's gate order r, z, n):
    /// `gates_in` (2, N, 3d) are the input projections with their bias,
    /// `hidden_weight` (2, d, 3d), `hidden_bias` (2, 1, 3d), `start` (2, B, d)
    /// the initial states of the molecules, longest first; step t updates
    /// the first `active[t]` states from rows `Σ_{s<t} active[s]…`.
    /// Returns every step's new states, (2, N, d), in the same row order.
    fn gru_scan(
        gates_in: FloatTensor<Self>,
        hidden_weight: FloatTensor<Self>,
        hidden_bias: FloatTensor<Self>,
        start: FloatTensor<Self>,
        active: Vec<usize>,
    ) -> FloatTensor<Self>;

    /// CoMPT's layer norm over the last dimension of `x` (rows, d):
    /// `gain·(x−μ)/(σ+1e−6) + shift` with σ the unbiased standard deviation
    /// (floored inside the root at 1e−20, as the composite does).
    fn layer_norm(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Mish, `x·tanh(softplus(x))`, element-wise in the one-`exp` form of
    /// [`crate::model::compt::mish`].
    fn mish(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// CoMPT's message attention over the real atoms of each molecule:
    /// for molecule b (its `counts[b]` atoms, packed rows in batch order),
    /// scores `s_hmn = Σ_f u_m,hf · e_b,m,f,n`, `p = softmax_n(s)`, messages
    /// `p_hmn · w_bmn`, and `out_m = Σ_n msg_hmn v_n` per head's columns.
    /// `queries` (N, h·F), `values` (N, d), `pair_by_row` (B, L, F, L) bond
    /// features with the constant 1 (data: no gradient), `weights` (B, L, L)
    /// the distance kernel times `2 − I`. Returns (N, d).
    fn message_attention(
        queries: FloatTensor<Self>,
        values: FloatTensor<Self>,
        pair_by_row: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        counts: Vec<usize>,
        heads: usize,
    ) -> FloatTensor<Self>;

    /// Weighted sums of rows by a fixed sparse map, for every batch entry:
    /// `x` (batch, map.input_rows(), width) → (batch, map.output_rows(), width).
    /// The message passing of the packed-graph backbones (neighbour sums,
    /// directed-bond messages, scatter-sums, mean readouts) is this op.
    fn map_rows(x: FloatTensor<Self>, map: RowMap) -> FloatTensor<Self>;

    /// `x · weight + bias` for `x` (rows, k), `weight` (k, n), `bias` (n):
    /// one matrix product writing onto the broadcast bias (burn adds the
    /// bias in a separate broadcast pass, as slow as the product itself for
    /// a d×d layer).
    fn linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `relu(x · weight + base)` for `x` (rows, k), `weight` (k, n), `base`
    /// (rows, n): the message update of D-MPNN and GROVER in one pass (the
    /// product writes onto a copy of `base`, the ReLU runs in place).
    fn linear_add_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        base: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `relu(x · weight + base)` (rank 2), fused on flex, composite elsewhere.
pub fn linear_add_relu(x: Tensor<2>, weight: Tensor<2>, base: Tensor<2>) -> Tensor<2> {
    if !supported(&x) {
        return burn::tensor::activation::relu(x.matmul(weight) + base);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::linear_add_relu(
        x.into_dispatch(),
        weight.into_dispatch(),
        base.into_dispatch(),
    ))
}

/// `linear.forward(x)`, through the fused [`FusedOps::linear`] when `x` is
/// [`supported`] and the layer has a bias (rows are all leading axes).
pub fn apply_linear<const D: usize>(linear: &burn::nn::Linear, x: Tensor<D>) -> Tensor<D> {
    let Some(bias) = linear.bias.as_ref().filter(|_| supported(&x)) else {
        return linear.forward(x);
    };
    let mut shape = x.dims();
    let k = shape[D - 1];
    let rows = shape.iter().product::<usize>() / k.max(1);
    let weight = linear.weight.val();
    shape[D - 1] = weight.dims()[1];
    linear_tensors(x.reshape([rows, k]), weight, bias.val()).reshape(shape)
}

/// `x · weight + bias` on tensors (rank 2): fused on flex, composite elsewhere.
pub fn linear_tensors(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    if !supported(&x) {
        return x.matmul(weight) + bias.unsqueeze();
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::linear(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// One direction of a [`RowMap`] in compressed-row form.
#[derive(Debug, Clone, Default)]
struct SparseRows {
    /// Entries of output row i are `offsets[i]..offsets[i + 1]`.
    offsets: Vec<usize>,
    /// Input row of each entry.
    columns: Vec<u32>,
    /// Weight of each entry.
    weights: Vec<f32>,
}

impl SparseRows {
    fn new(output_rows: usize, entries: &[(usize, usize, f32)]) -> Self {
        let mut counts = vec![0usize; output_rows + 1];
        for &(out, _, _) in entries {
            counts[out + 1] += 1;
        }
        for i in 0..output_rows {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut columns = vec![0u32; entries.len()];
        let mut weights = vec![0f32; entries.len()];
        for &(out, input, weight) in entries {
            columns[fill[out]] = input as u32;
            weights[fill[out]] = weight;
            fill[out] += 1;
        }
        Self {
            offsets: counts,
            columns,
            weights,
        }
    }

    fn output_rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// A fixed linear map between row tables, `out_i = Σ_k w_k · in_{c_k}`,
/// kept with its transpose for the backward pass. Built once per batch on
/// the host from the graph's index arrays.
#[derive(Debug, Clone)]
pub struct RowMap {
    forward: std::sync::Arc<SparseRows>,
    transpose: std::sync::Arc<SparseRows>,
}

impl RowMap {
    /// The map with the given (output row, input row, weight) entries;
    /// repeated pairs add up.
    ///
    /// # Panics
    /// If an entry's row is outside `output_rows` or `input_rows`.
    pub fn new(output_rows: usize, input_rows: usize, entries: &[(usize, usize, f32)]) -> Self {
        assert!(
            entries
                .iter()
                .all(|&(o, i, _)| o < output_rows && i < input_rows),
            "RowMap: an entry lies outside {output_rows} × {input_rows}"
        );
        let transposed: Vec<(usize, usize, f32)> =
            entries.iter().map(|&(o, i, w)| (i, o, w)).collect();
        Self {
            forward: std::sync::Arc::new(SparseRows::new(output_rows, entries)),
            transpose: std::sync::Arc::new(SparseRows::new(input_rows, &transposed)),
        }
    }

    /// Rows the map produces.
    pub fn output_rows(&self) -> usize {
        self.forward.output_rows()
    }

    /// Rows the map reads.
    pub fn input_rows(&self) -> usize {
        self.transpose.output_rows()
    }
}

/// [`FusedOps::map_rows`] along axis `dim` of a rank-2 (`dim` 0) or rank-3
/// (`dim` 1) tensor.
///
/// # Panics
/// If the tensor is not [`supported`], `dim` is not the rows axis of a
/// rank-2/3 tensor, or its row count is not the map's input rows.
pub fn map_rows<const D: usize>(x: Tensor<D>, dim: usize, map: &RowMap) -> Tensor<D> {
    let shape = x.dims();
    assert!(
        (D == 2 && dim == 0) || (D == 3 && dim == 1),
        "map_rows: rows must be axis 0 of a matrix or axis 1 of a rank-3 tensor"
    );
    assert_eq!(shape[dim], map.input_rows(), "map_rows: row count");
    let batch = if D == 3 { shape[0] } else { 1 };
    let width = shape[D - 1];
    let x = x.reshape([batch, map.input_rows(), width]);
    let out = Tensor::<3>::from_dispatch(<Dispatch as FusedOps>::map_rows(
        x.into_dispatch(),
        map.clone(),
    ));
    let mut out_shape = shape;
    out_shape[dim] = map.output_rows();
    out.reshape(out_shape)
}

/// [`FusedOps::message_attention`] on tensors (see there for the layout).
///
/// # Panics
/// If the tensors are not [`supported`] or their shapes disagree with `counts`.
pub fn message_attention(
    queries: Tensor<2>,
    values: Tensor<2>,
    pair_by_row: Tensor<4>,
    weights: Tensor<3>,
    counts: &[usize],
    heads: usize,
) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::message_attention(
        queries.into_dispatch(),
        values.into_dispatch(),
        pair_by_row.into_dispatch(),
        weights.into_dispatch(),
        counts.to_vec(),
        heads,
    ))
}

/// [`FusedOps::layer_norm`] over the last dimension of a tensor of any rank.
///
/// # Panics
/// If the tensors are not [`supported`] or `gain`/`shift` do not match the
/// last dimension.
pub fn layer_norm<const D: usize>(x: Tensor<D>, gain: Tensor<1>, shift: Tensor<1>) -> Tensor<D> {
    let shape = x.dims();
    let width = shape[D - 1];
    let rows = shape.iter().product::<usize>() / width.max(1);
    let flat = x.reshape([rows, width]);
    Tensor::<2>::from_dispatch(<Dispatch as FusedOps>::layer_norm(
        flat.into_dispatch(),
        gain.into_dispatch(),
        shift.into_dispatch(),
    ))
    .reshape(shape)
}

/// [`FusedOps::mish`] on a tensor of any rank.
///
/// # Panics
/// If the tensor is not [`supported`].
pub fn mish<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::mish(x.into_dispatch()))
}

/// [`FusedOps::gru_scan`] on tensors (see there for the layout).
///
/// # Panics
/// If the tensors are not [`supported`] or their shapes disagree.
pub fn gru_scan(
    gates_in: Tensor<3>,
    hidden_weight: Tensor<3>,
    hidden_bias: Tensor<3>,
    start: Tensor<3>,
    active: &[usize],
) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::gru_scan(
        gates_in.into_dispatch(),
        hidden_weight.into_dispatch(),
        hidden_bias.into_dispatch(),
        start.into_dispatch(),
        active.to_vec(),
    ))
}

/// Contiguous f32 values of a flex tensor (a copy only when it is strided).
fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec(),
        ),
    }
}

fn flex(values: Vec<f32>, shape: [usize; 3]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `dst (m×n) = beta_dst·dst + lhs (m×k) · rhs (k×n)`, every matrix given by
/// its row and column strides; single-threaded (the callers parallelise).
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= m * n);
    if k > 0 {
        assert!(lhs.len() > (m - 1) * lhs_strides.0 + (k - 1) * lhs_strides.1);
        assert!(rhs.len() > (k - 1) * rhs_strides.0 + (n - 1) * rhs_strides.1);
    }
    // SAFETY: the asserts above keep every index the product touches inside
    // the three slices; `dst` does not alias the inputs (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1 as isize,
            lhs_strides.0 as isize,
            rhs.as_ptr(),
            rhs_strides.1 as isize,
            rhs_strides.0 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The logistic sigmoid as the composite computes it (clamped at ±30).
#[inline]
fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-30.0, 30.0)).exp())
}

/// Sizes of one GRU scan.
#[derive(Debug, Clone)]
struct GruShape {
    /// Hidden width d.
    width: usize,
    /// Molecules B.
    molecules: usize,
    /// Rows N (all real atoms).
    rows: usize,
    /// Molecules updated at each step.
    active: Vec<usize>,
    /// First row of each step.
    offsets: Vec<usize>,
}

impl GruShape {
    fn new(gates_in: &FlexTensor, start: &FlexTensor, active: Vec<usize>) -> Self {
        let gates = gates_in.layout().shape();
        let starts = start.layout().shape();
        let (rows, width, molecules) = (gates[1], starts[2], starts[1]);
        assert_eq!(gates[2], 3 * width, "gru_scan: gate width is not 3·d");
        let mut offsets = Vec::with_capacity(active.len());
        let mut total = 0;
        for (t, &a) in active.iter().enumerate() {
            assert!(
                a <= molecules && (t == 0 || a <= active[t - 1]),
                "gru_scan: active counts must not grow"
            );
            offsets.push(total);
            total += a;
        }
        assert_eq!(
            total, rows,
            "gru_scan: active counts do not add up to the rows"
        );
        Self {
            width,
            molecules,
            rows,
            active,
            offsets,
        }
    }
}

/// What the backward pass needs from the forward pass, per direction:
/// the reset and update gates, the candidate, the hidden-gate part of the
/// candidate and the previous state of every row, each (N, d).
#[derive(Debug, Clone)]
struct GruSaved {
    shape: GruShape,
    hidden_weight: FlexTensor,
    /// [r, z, n, W_hn h + b_hn, h_prev] of each direction, (2, 5, N, d).
    cache: std::sync::Arc<Vec<f32>>,
}

/// The forward recurrence; fills `cache` (5 blocks of N×d per direction) when given.
fn gru_forward(
    shape: &GruShape,
    gates_in: &[f32],
    hidden_weight: &[f32],
    hidden_bias: &[f32],
    start: &[f32],
    cache: Option<&mut [f32]>,
) -> Vec<f32> {
    let (d, n) = (shape.width, shape.rows);
    let mut out = vec![0f32; 2 * n * d];
    let block = 5 * n * d;
    let (out_fwd, out_rev) = out.split_at_mut(n * d);
    let (cache_fwd, cache_rev) = match cache {
        Some(c) => {
            let (a, b) = c.split_at_mut(block);
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    let direction = |dir: usize, out: &mut [f32], cache: Option<&mut [f32]>| {
        let gates_in = &gates_in[dir * n * 3 * d..(dir + 1) * n * 3 * d];
        let weight = &hidden_weight[dir * d * 3 * d..(dir + 1) * d * 3 * d];
        let bias = &hidden_bias[dir * 3 * d..(dir + 1) * 3 * d];
        let start = &start[dir * shape.molecules * d..(dir + 1) * shape.molecules * d];
        let mut cache = cache;
        let mut hidden_gates = vec![0f32; shape.molecules * 3 * d];
        for (t, &a) in shape.active.iter().enumerate() {
            let row = shape.offsets[t];
            let (done, rest) = out.split_at_mut(row * d);
            let previous: &[f32] = if t == 0 {
                &start[..a * d]
            } else {
                &done[shape.offsets[t - 1] * d..(shape.offsets[t - 1] + a) * d]
            };
            let hg = &mut hidden_gates[..a * 3 * d];
            for r in 0..a {
                hg[r * 3 * d..(r + 1) * 3 * d].copy_from_slice(bias);
            }
            gemm(a, 3 * d, d, hg, true, previous, (d, 1), weight, (3 * d, 1));
            let current = &mut rest[..a * d];
            for r in 0..a {
                let gi = &gates_in[(row + r) * 3 * d..(row + r + 1) * 3 * d];
                let hg = &hg[r * 3 * d..(r + 1) * 3 * d];
                let prev = &previous[r * d..(r + 1) * d];
                let h = &mut current[r * d..(r + 1) * d];
                for j in 0..d {
                    let reset = logistic(gi[j] + hg[j]);
                    let update = logistic(gi[d + j] + hg[d + j]);
                    let candidate = (gi[2 * d + j] + reset * hg[2 * d + j]).tanh();
                    h[j] = candidate + update * (prev[j] - candidate);
                    if let Some(cache) = cache.as_deref_mut() {
                        let at = (row + r) * d + j;
                        cache[at] = reset;
                        cache[n * d + at] = update;
                        cache[2 * n * d + at] = candidate;
                        cache[3 * n * d + at] = hg[2 * d + j];
                        cache[4 * n * d + at] = prev[j];
                    }
                }
            }
        }
    };
    rayon::join(
        || direction(0, out_fwd, cache_fwd),
        || direction(1, out_rev, cache_rev),
    );
    out
}

/// Gradients of one direction: (gates_in (N, 3d), hidden_weight (d, 3d),
/// hidden_bias (3d), start (B, d)).
fn gru_backward_direction(
    shape: &GruShape,
    dir: usize,
    grad_out: &[f32],
    hidden_weight: &[f32],
    cache: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (d, n, b) = (shape.width, shape.rows, shape.molecules);
    let grad_out = &grad_out[dir * n * d..(dir + 1) * n * d];
    let weight = &hidden_weight[dir * d * 3 * d..(dir + 1) * d * 3 * d];
    let cache = &cache[dir * 5 * n * d..(dir + 1) * 5 * n * d];
    let part = |k: usize| &cache[k * n * d..(k + 1) * n * d];
    let (reset, update, candidate, hidden_n, previous) =
        (part(0), part(1), part(2), part(3), part(4));
    // Wᵀ (3d × d) laid out row-major: the per-step products read it as a
    // plain (not transposed) operand, which gemm's kernels run 2–5× faster
    // for the few rows a step has.
    let mut weight_t = vec![0f32; 3 * d * d];
    for i in 0..d {
        for j in 0..3 * d {
            weight_t[j * d + i] = weight[i * 3 * d + j];
        }
    }
    let mut grad_gates_in = vec![0f32; n * 3 * d];
    let mut grad_hidden_gates = vec![0f32; n * 3 * d];
    // Gradient flowing into the states of step t from step t+1 (rows 0..active[t+1]).
    let mut carry = vec![0f32; b * d];
    let mut next_carry = vec![0f32; b * d];
    let steps = shape.active.len();
    for t in (0..steps).rev() {
        let (a, row) = (shape.active[t], shape.offsets[t]);
        let carried = if t + 1 < steps {
            shape.active[t + 1]
        } else {
            0
        };
        for r in 0..a {
            let at = (row + r) * d;
            let gi = &mut grad_gates_in[(row + r) * 3 * d..(row + r + 1) * 3 * d];
            let ghg = &mut grad_hidden_gates[(row + r) * 3 * d..(row + r + 1) * 3 * d];
            let direct = &mut next_carry[r * d..(r + 1) * d];
            for j in 0..d {
                let dh = grad_out[at + j] + if r < carried { carry[r * d + j] } else { 0.0 };
                let (rg, zg, ng, hn, hp) = (
                    reset[at + j],
                    update[at + j],
                    candidate[at + j],
                    hidden_n[at + j],
                    previous[at + j],
                );
                // h = n + z (h_prev − n)
                let d_candidate = dh * (1.0 - zg);
                let d_update = dh * (hp - ng);
                direct[j] = dh * zg;
                // n = tanh(gi_n + r · hn)
                let d_pre_n = d_candidate * (1.0 - ng * ng);
                let d_reset = d_pre_n * hn;
                // r, z = σ(gi + hg)
                let d_pre_r = d_reset * rg * (1.0 - rg);
                let d_pre_z = d_update * zg * (1.0 - zg);
                gi[j] = d_pre_r;
                gi[d + j] = d_pre_z;
                gi[2 * d + j] = d_pre_n;
                ghg[j] = d_pre_r;
                ghg[d + j] = d_pre_z;
                ghg[2 * d + j] = d_pre_n * rg;
            }
        }
        // dh_prev = dh·z + dHG · W_hᵀ
        gemm(
            a,
            d,
            3 * d,
            &mut next_carry[..a * d],
            true,
            &grad_hidden_gates[row * 3 * d..(row + a) * 3 * d],
            (3 * d, 1),
            &weight_t,
            (d, 1),
        );
        std::mem::swap(&mut carry, &mut next_carry);
    }
    let mut grad_start = vec![0f32; b * d];
    if let Some(&first) = shape.active.first() {
        grad_start[..first * d].copy_from_slice(&carry[..first * d]);
    }
    // dW = H_prevᵀ · dHG over every row at once.
    let mut grad_weight = vec![0f32; d * 3 * d];
    gemm(
        d,
        3 * d,
        n,
        &mut grad_weight,
        false,
        previous,
        (1, d),
        &grad_hidden_gates,
        (3 * d, 1),
    );
    let mut grad_bias = vec![0f32; 3 * d];
    for r in 0..n {
        for (g, v) in grad_bias
            .iter_mut()
            .zip(&grad_hidden_gates[r * 3 * d..(r + 1) * 3 * d])
        {
            *g += v;
        }
    }
    (grad_gates_in, grad_weight, grad_bias, grad_start)
}

#[derive(Debug)]
struct GruScanBackward;

impl Backward<Flex, 4> for GruScanBackward {
    type State = GruSaved;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let saved = ops.state;
        let shape = &saved.shape;
        let grad_out = grads.consume::<Flex>(&ops.node);
        let grad_out = values(&grad_out);
        let weight = values(&saved.hidden_weight);
        let (forward, reverse) = rayon::join(
            || gru_backward_direction(shape, 0, &grad_out, &weight, &saved.cache),
            || gru_backward_direction(shape, 1, &grad_out, &weight, &saved.cache),
        );
        let (d, n, b) = (shape.width, shape.rows, shape.molecules);
        let [gates_in, hidden_weight, hidden_bias, start] = ops.parents;
        let cat = |x: Vec<f32>, y: Vec<f32>| {
            let mut v = x;
            v.extend(y);
            v
        };
        if let Some(node) = gates_in {
            grads.register::<Flex>(node.id, flex(cat(forward.0, reverse.0), [2, n, 3 * d]));
        }
        if let Some(node) = hidden_weight {
            grads.register::<Flex>(node.id, flex(cat(forward.1, reverse.1), [2, d, 3 * d]));
        }
        if let Some(node) = hidden_bias {
            grads.register::<Flex>(node.id, flex(cat(forward.2, reverse.2), [2, 1, 3 * d]));
        }
        if let Some(node) = start {
            grads.register::<Flex>(node.id, flex(cat(forward.3, reverse.3), [2, b, d]));
        }
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn gru_scan(
        gates_in: FloatTensor<Self>,
        hidden_weight: FloatTensor<Self>,
        hidden_bias: FloatTensor<Self>,
        start: FloatTensor<Self>,
        active: Vec<usize>,
    ) -> FloatTensor<Self> {
        let nodes = [
            gates_in.node(),
            hidden_weight.node(),
            hidden_bias.node(),
            start.node(),
        ];
        let (gates_in, hidden_weight, hidden_bias, start) = (
            gates_in.into_primitive(),
            hidden_weight.into_primitive(),
            hidden_bias.into_primitive(),
            start.into_primitive(),
        );
        let shape = GruShape::new(&gates_in, &start, active);
        match GruScanBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let mut cache = vec![0f32; 2 * 5 * shape.rows * shape.width];
                let out = gru_forward(
                    &shape,
                    &values(&gates_in),
                    &values(&hidden_weight),
                    &values(&hidden_bias),
                    &values(&start),
                    Some(&mut cache),
                );
                let output = flex(out, [2, shape.rows, shape.width]);
                let saved = GruSaved {
                    shape,
                    hidden_weight,
                    cache: std::sync::Arc::new(cache),
                };
                prep.finish(saved, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(<Flex as FusedOps>::gru_scan(
                gates_in,
                hidden_weight,
                hidden_bias,
                start,
                shape.active,
            )),
        }
    }

    fn layer_norm(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gain.node(), shift.node()];
        let (x, gain, shift) = (
            x.into_primitive(),
            gain.into_primitive(),
            shift.into_primitive(),
        );
        match LayerNormBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let shape = x.layout().shape().to_vec();
                let width = shape[shape.len() - 1];
                let (out, normalised, inverse, sigma) =
                    layer_norm_forward(&values(&x), width, &values(&gain), &values(&shift));
                let saved = LayerNormSaved {
                    width,
                    gain,
                    normalised: std::sync::Arc::new(normalised),
                    inverse: std::sync::Arc::new(inverse),
                    sigma: std::sync::Arc::new(sigma),
                };
                prep.finish(saved, flex_shaped(out, &shape))
            }
            OpsKind::UnTracked(prep) => prep.finish(<Flex as FusedOps>::layer_norm(x, gain, shift)),
        }
    }

    fn linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node()];
        let (x, weight, bias) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        match LinearBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = <Flex as FusedOps>::linear(x.clone(), weight.clone(), bias);
                prep.finish(LinearSaved { x, weight }, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(<Flex as FusedOps>::linear(x, weight, bias)),
        }
    }

    fn linear_add_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        base: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), base.node()];
        let (x, weight, base) = (
            x.into_primitive(),
            weight.into_primitive(),
            base.into_primitive(),
        );
        match LinearAddReluBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = <Flex as FusedOps>::linear_add_relu(x.clone(), weight.clone(), base);
                let saved = LinearAddReluSaved {
                    x,
                    weight,
                    output: output.clone(),
                };
                prep.finish(saved, output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(<Flex as FusedOps>::linear_add_relu(x, weight, base))
            }
        }
    }

    fn map_rows(x: FloatTensor<Self>, map: RowMap) -> FloatTensor<Self> {
        let nodes = [x.node()];
        let x = x.into_primitive();
        match MapRowsBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let shape = x.layout().shape().to_vec();
                let state = (map.clone(), shape[0], shape[2]);
                prep.finish(state, <Flex as FusedOps>::map_rows(x, map))
            }
            OpsKind::UnTracked(prep) => prep.finish(<Flex as FusedOps>::map_rows(x, map)),
        }
    }

    fn message_attention(
        queries: FloatTensor<Self>,
        values_tensor: FloatTensor<Self>,
        pair_by_row: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        counts: Vec<usize>,
        heads: usize,
    ) -> FloatTensor<Self> {
        let nodes = [
            queries.node(),
            values_tensor.node(),
            pair_by_row.node(),
            weights.node(),
        ];
        let (queries, values_tensor, pair, weights) = (
            queries.into_primitive(),
            values_tensor.into_primitive(),
            pair_by_row.into_primitive(),
            weights.into_primitive(),
        );
        match AttentionBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let shape = AttentionShape::new(&queries, &values_tensor, &pair, counts, heads);
                let (out, probs) = attention_forward(
                    &shape,
                    &values(&queries),
                    &values(&values_tensor),
                    &values(&pair),
                    &values(&weights),
                );
                let n = out.len() / shape.width;
                let output = flex_shaped(out, &[n, shape.width]);
                let saved = AttentionSaved {
                    shape,
                    values: values_tensor,
                    pair,
                    weights,
                    probs: std::sync::Arc::new(probs),
                };
                prep.finish(saved, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(<Flex as FusedOps>::message_attention(
                queries,
                values_tensor,
                pair,
                weights,
                counts,
                heads,
            )),
        }
    }

    fn mish(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [x.node()];
        let x = x.into_primitive();
        match MishBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = <Flex as FusedOps>::mish(x.clone());
                prep.finish(x, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(<Flex as FusedOps>::mish(x)),
        }
    }
}

/// Rows per parallel task of the element-wise kernels: enough work per task
/// to pay for the hand-off, few enough tasks to balance two to many cores.
fn rows_per_task(rows: usize, width: usize) -> usize {
    let per_task = (16_384 / width.max(1)).max(1);
    per_task
        .max(rows.div_ceil(4 * rayon::current_num_threads().max(1)))
        .min(rows.max(1))
}

/// Forward layer norm of `x` (rows × width); also returns x̂ = (x−μ)/(σ+ε),
/// 1/(σ+ε) and σ per row, which the backward pass reads.
fn layer_norm_forward(
    x: &[f32],
    width: usize,
    gain: &[f32],
    shift: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let rows = x.len() / width.max(1);
    let mut out = vec![0f32; x.len()];
    let mut normalised = vec![0f32; x.len()];
    let mut inverse = vec![0f32; rows];
    let mut sigma = vec![0f32; rows];
    let chunk = rows_per_task(rows, width);
    let denominator = (width.max(2) - 1) as f32;
    out.par_chunks_mut(chunk * width)
        .zip(normalised.par_chunks_mut(chunk * width))
        .zip(
            inverse
                .par_chunks_mut(chunk)
                .zip(sigma.par_chunks_mut(chunk)),
        )
        .zip(x.par_chunks(chunk * width))
        .for_each(|(((out, normalised), (inverse, sigma)), x)| {
            for r in 0..inverse.len() {
                let row = &x[r * width..(r + 1) * width];
                let mean = row.iter().sum::<f32>() / width as f32;
                let variance =
                    row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / denominator;
                let s = (variance + 1e-20).sqrt();
                let inv = 1.0 / (s + 1e-6);
                sigma[r] = s;
                inverse[r] = inv;
                let (o, n) = (
                    &mut out[r * width..(r + 1) * width],
                    &mut normalised[r * width..(r + 1) * width],
                );
                for j in 0..width {
                    let hat = (row[j] - mean) * inv;
                    n[j] = hat;
                    o[j] = hat * gain[j] + shift[j];
                }
            }
        });
    (out, normalised, inverse, sigma)
}

/// Gradients of the layer norm: (x, gain, shift).
fn layer_norm_backward(
    grad: &[f32],
    width: usize,
    gain: &[f32],
    normalised: &[f32],
    inverse: &[f32],
    sigma: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let rows = inverse.len();
    let mut grad_x = vec![0f32; grad.len()];
    let chunk = rows_per_task(rows, width);
    let denominator = (width.max(2) - 1) as f32;
    // Each task returns its partial sums of the gain and shift gradients.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = grad_x
        .par_chunks_mut(chunk * width)
        .enumerate()
        .map(|(task, grad_x)| {
            let mut grad_gain = vec![0f32; width];
            let mut grad_shift = vec![0f32; width];
            let first = task * chunk;
            let mut d_hat = vec![0f32; width];
            for r in 0..grad_x.len() / width {
                let at = (first + r) * width;
                let (dy, hat) = (&grad[at..at + width], &normalised[at..at + width]);
                let mut sum_d_hat = 0.0;
                let mut sum_d_hat_hat = 0.0;
                for j in 0..width {
                    grad_shift[j] += dy[j];
                    grad_gain[j] += dy[j] * hat[j];
                    d_hat[j] = dy[j] * gain[j];
                    sum_d_hat += d_hat[j];
                    sum_d_hat_hat += d_hat[j] * hat[j];
                }
                let inv = inverse[first + r];
                let mean_d_hat = sum_d_hat / width as f32;
                // dx = inv·(dx̂ − mean dx̂) − x̂·Σ(dx̂·x̂) / (σ·(d−1))
                let k = sum_d_hat_hat / (sigma[first + r] * denominator);
                let gx = &mut grad_x[r * width..(r + 1) * width];
                for j in 0..width {
                    gx[j] = inv * (d_hat[j] - mean_d_hat) - hat[j] * k;
                }
            }
            (grad_gain, grad_shift)
        })
        .collect();
    let mut grad_gain = vec![0f32; width];
    let mut grad_shift = vec![0f32; width];
    for (g, s) in partials {
        for j in 0..width {
            grad_gain[j] += g[j];
            grad_shift[j] += s[j];
        }
    }
    (grad_x, grad_gain, grad_shift)
}

/// `x·t` with `t = p/(p+2)`, `p = n(n+2)`, `n = e^min(x,20)`; its derivative
/// `t + x·2n(2n+2)/(p+2)²` below the clamp and `t` above it.
#[inline]
fn mish_parts(x: f32) -> (f32, f32) {
    let n = x.min(20.0).exp();
    let p = n * (n + 2.0);
    let t = p / (p + 2.0);
    let slope = if x < 20.0 {
        t + x * 2.0 * n * (2.0 * n + 2.0) / ((p + 2.0) * (p + 2.0))
    } else {
        t
    };
    (x * t, slope)
}

fn mish_forward(x: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(16_384)
        .zip(x.par_chunks(16_384))
        .for_each(|(o, x)| {
            for (o, &v) in o.iter_mut().zip(x) {
                let n = v.min(20.0).exp();
                let p = n * (n + 2.0);
                *o = v * (p / (p + 2.0));
            }
        });
    out
}

fn mish_backward(x: &[f32], grad: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(16_384)
        .zip(x.par_chunks(16_384).zip(grad.par_chunks(16_384)))
        .for_each(|(o, (x, g))| {
            for ((o, &v), &g) in o.iter_mut().zip(x).zip(g) {
                *o = g * mish_parts(v).1;
            }
        });
    out
}

fn flex_shaped(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

impl FusedOps for Flex {
    fn gru_scan(
        gates_in: FlexTensor,
        hidden_weight: FlexTensor,
        hidden_bias: FlexTensor,
        start: FlexTensor,
        active: Vec<usize>,
    ) -> FlexTensor {
        let shape = GruShape::new(&gates_in, &start, active);
        let out = gru_forward(
            &shape,
            &values(&gates_in),
            &values(&hidden_weight),
            &values(&hidden_bias),
            &values(&start),
            None,
        );
        flex(out, [2, shape.rows, shape.width])
    }

    fn layer_norm(x: FlexTensor, gain: FlexTensor, shift: FlexTensor) -> FlexTensor {
        let shape = x.layout().shape().to_vec();
        let width = shape[shape.len() - 1];
        let (out, ..) = layer_norm_forward(&values(&x), width, &values(&gain), &values(&shift));
        flex_shaped(out, &shape)
    }

    fn mish(x: FlexTensor) -> FlexTensor {
        let shape = x.layout().shape().to_vec();
        flex_shaped(mish_forward(&values(&x)), &shape)
    }

    fn linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let shape = x.layout().shape();
        let (rows, k) = (shape[0], shape[1]);
        let n = weight.layout().shape()[1];
        let out = linear_forward(&values(&x), rows, k, &values(&weight), &values(&bias));
        flex_shaped(out, &[rows, n])
    }

    fn linear_add_relu(x: FlexTensor, weight: FlexTensor, base: FlexTensor) -> FlexTensor {
        let shape = x.layout().shape();
        let (rows, k) = (shape[0], shape[1]);
        let n = weight.layout().shape()[1];
        let out = linear_add_relu_forward(&values(&x), rows, k, &values(&weight), &values(&base));
        flex_shaped(out, &[rows, n])
    }

    fn map_rows(x: FlexTensor, map: RowMap) -> FlexTensor {
        let shape = x.layout().shape().to_vec();
        let (batch, width) = (shape[0], shape[2]);
        assert_eq!(shape[1], map.input_rows(), "map_rows: row count");
        let out = map_rows_forward(&values(&x), batch, width, &map.forward);
        flex_shaped(out, &[batch, map.output_rows(), width])
    }

    fn message_attention(
        queries: FlexTensor,
        values_tensor: FlexTensor,
        pair_by_row: FlexTensor,
        weights: FlexTensor,
        counts: Vec<usize>,
        heads: usize,
    ) -> FlexTensor {
        let shape = AttentionShape::new(&queries, &values_tensor, &pair_by_row, counts, heads);
        let (out, _) = attention_forward(
            &shape,
            &values(&queries),
            &values(&values_tensor),
            &values(&pair_by_row),
            &values(&weights),
        );
        let n = out.len() / shape.width;
        flex_shaped(out, &[n, shape.width])
    }
}

/// What the layer norm's backward pass reads.
#[derive(Debug, Clone)]
struct LayerNormSaved {
    width: usize,
    gain: FlexTensor,
    normalised: std::sync::Arc<Vec<f32>>,
    inverse: std::sync::Arc<Vec<f32>>,
    sigma: std::sync::Arc<Vec<f32>>,
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = LayerNormSaved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let saved = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let shape = grad.layout().shape().to_vec();
        let (grad_x, grad_gain, grad_shift) = layer_norm_backward(
            &values(&grad),
            saved.width,
            &values(&saved.gain),
            &saved.normalised,
            &saved.inverse,
            &saved.sigma,
        );
        let [x, gain, shift] = ops.parents;
        if let Some(node) = x {
            grads.register::<Flex>(node.id, flex_shaped(grad_x, &shape));
        }
        if let Some(node) = gain {
            grads.register::<Flex>(node.id, flex_shaped(grad_gain, &[saved.width]));
        }
        if let Some(node) = shift {
            grads.register::<Flex>(node.id, flex_shaped(grad_shift, &[saved.width]));
        }
    }
}

#[derive(Debug)]
struct MishBackward;

impl Backward<Flex, 1> for MishBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let shape = grad.layout().shape().to_vec();
        let [x] = ops.parents;
        if let Some(node) = x {
            let grad_x = mish_backward(&values(&ops.state), &values(&grad));
            grads.register::<Flex>(node.id, flex_shaped(grad_x, &shape));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    use super::*;
    use crate::model::compt::{LayerNorm, mish_composite};

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

    fn device() -> Device {
        let device = Device::flex().autodiff();
        device.seed(11);
        device
    }

    /// Rows with varied scales, one constant row (σ = 0) and one spanning
    /// the mish clamp at 20.
    fn input(device: &Device, rows: usize, width: usize) -> Tensor<2> {
        let mut x = host(Tensor::<2>::random(
            [rows, width],
            Distribution::Normal(0.0, 2.0),
            device,
        ));
        for (r, row) in x.chunks_mut(width).enumerate() {
            for v in row.iter_mut() {
                *v *= 1.0 + r as f32;
            }
        }
        x[..width].fill(0.75);
        for (j, v) in x[width..2 * width].iter_mut().enumerate() {
            *v = -30.0 + 60.0 * j as f32 / width as f32;
        }
        Tensor::from_data(TensorData::new(x, [rows, width]), device).require_grad()
    }

    #[test]
    fn fused_layer_norm_matches_the_composite_with_gradients() {
        let device = device();
        for (rows, width) in [(37, 24), (3, 1), (700, 256)] {
            let x = input(&device, rows, width);
            let norm = LayerNorm {
                gain: burn::module::Param::from_tensor(Tensor::<1>::random(
                    [width],
                    Distribution::Normal(1.0, 0.5),
                    &device,
                )),
                shift: burn::module::Param::from_tensor(Tensor::<1>::random(
                    [width],
                    Distribution::Normal(0.0, 0.5),
                    &device,
                )),
            };
            let probe = Tensor::<2>::random([rows, width], Distribution::Normal(0.0, 1.0), &device);
            let fused = layer_norm(x.clone(), norm.gain.val(), norm.shift.val());
            let composite = norm.forward_composite(x.clone());
            let case = format!("{rows}×{width}");
            assert_close(
                &format!("{case} values"),
                &host(fused.clone()),
                &host(composite.clone()),
                1e-5,
            );
            let fused_grads = (fused * probe.clone()).sum().backward();
            let composite_grads = (composite * probe).sum().backward();
            let both = |t: Tensor<1>| {
                (
                    host(t.grad(&fused_grads).unwrap()),
                    host(t.grad(&composite_grads).unwrap()),
                )
            };
            let pairs = [
                (
                    "x",
                    (
                        host(x.grad(&fused_grads).unwrap()),
                        host(x.grad(&composite_grads).unwrap()),
                    ),
                ),
                ("gain", both(norm.gain.val())),
                ("shift", both(norm.shift.val())),
            ];
            for (name, (got, want)) in pairs {
                // The constant row's gradient is scaled by 1/(σ+ε) ≈ 1e6 in both.
                assert_close(&format!("{case} d{name}"), &got, &want, 2e-4);
            }
        }
    }

    #[test]
    fn fused_mish_matches_the_composite_with_gradients() {
        let device = device();
        let x = input(&device, 9, 40);
        let probe = Tensor::<2>::random([9, 40], Distribution::Normal(0.0, 1.0), &device);
        let fused = mish(x.clone());
        let composite = mish_composite(x.clone());
        assert_close(
            "values",
            &host(fused.clone()),
            &host(composite.clone()),
            1e-6,
        );
        let got = host(x.grad(&(fused * probe.clone()).sum().backward()).unwrap());
        let want = host(x.grad(&(composite * probe).sum().backward()).unwrap());
        assert_close("gradient", &got, &want, 1e-5);
        // Known values: mish(0) = 0, mish(1) = 0.865098, mish(−1) = −0.303401.
        let plain = Device::flex();
        let known = host(mish(Tensor::<1>::from_floats(
            [0.0, 1.0, -1.0, 25.0],
            &plain,
        )));
        assert_close("known", &known, &[0.0, 0.865_098, -0.303_401, 25.0], 1e-6);
    }
}

/// `Σ a_i b_i` with eight partial sums, so the compiler keeps them in one
/// SIMD register (a single running f32 sum is a chain of dependent adds
/// that it may not reorder).
#[inline]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_blocks, b_blocks) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_tail, b_tail) = (a_blocks.remainder(), b_blocks.remainder());
    for (x, y) in a_blocks.zip(b_blocks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut total: f32 = lanes.iter().sum();
    for (x, y) in a_tail.iter().zip(b_tail) {
        total += x * y;
    }
    total
}

/// Sizes of one message-attention call.
#[derive(Debug, Clone)]
struct AttentionShape {
    counts: Vec<usize>,
    /// First packed row of each molecule.
    rows: Vec<usize>,
    /// First softmax entry of each molecule (h·n² entries each).
    probs: Vec<usize>,
    heads: usize,
    /// Pair features per pair, F (bond features + 1).
    features: usize,
    /// Padded atoms per molecule, L.
    atoms: usize,
    /// Model width d.
    width: usize,
}

impl AttentionShape {
    fn new(
        queries: &FlexTensor,
        values: &FlexTensor,
        pair: &FlexTensor,
        counts: Vec<usize>,
        heads: usize,
    ) -> Self {
        let pair_shape = pair.layout().shape();
        let (features, atoms) = (pair_shape[2], pair_shape[3]);
        let width = values.layout().shape()[1];
        let n: usize = counts.iter().sum();
        assert_eq!(
            pair_shape[0],
            counts.len(),
            "message_attention: pair features for another batch"
        );
        assert_eq!(
            queries.layout().shape()[..],
            [n, heads * features],
            "message_attention: query shape"
        );
        assert_eq!(
            values.layout().shape()[0],
            n,
            "message_attention: value rows"
        );
        assert!(
            heads > 0 && width.is_multiple_of(heads),
            "message_attention: width not divisible by heads"
        );
        assert!(
            counts.iter().all(|&c| c <= atoms),
            "message_attention: molecule larger than its padding"
        );
        let mut rows = Vec::with_capacity(counts.len());
        let mut probs = Vec::with_capacity(counts.len());
        let (mut r, mut p) = (0, 0);
        for &c in &counts {
            rows.push(r);
            probs.push(p);
            r += c;
            p += heads * c * c;
        }
        Self {
            counts,
            rows,
            probs,
            heads,
            features,
            atoms,
            width,
        }
    }

    fn total_probs(&self) -> usize {
        self.probs
            .last()
            .map_or(0, |p| p + self.heads * self.counts.last().unwrap().pow(2))
    }
}

/// The forward pass of one molecule: its output rows (n × d) and softmax (h × n × n).
fn attention_molecule(
    shape: &AttentionShape,
    b: usize,
    queries: &[f32],
    values: &[f32],
    pair: &[f32],
    weights: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (n, h, f, l, d) = (
        shape.counts[b],
        shape.heads,
        shape.features,
        shape.atoms,
        shape.width,
    );
    let dh = d / h;
    let row0 = shape.rows[b];
    let mut out = vec![0f32; n * d];
    let mut probs = vec![0f32; h * n * n];
    let mut scores = vec![0f32; n];
    for m in 0..n {
        let u = &queries[(row0 + m) * h * f..(row0 + m + 1) * h * f];
        let e = &pair[(b * l + m) * f * l..(b * l + m + 1) * f * l];
        let w = &weights[(b * l + m) * l..(b * l + m) * l + n];
        for head in 0..h {
            scores.fill(0.0);
            for k in 0..f {
                let coefficient = u[head * f + k];
                for (s, &v) in scores.iter_mut().zip(&e[k * l..k * l + n]) {
                    *s += coefficient * v;
                }
            }
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                total += *s;
            }
            let p = &mut probs[(head * n + m) * n..(head * n + m + 1) * n];
            let o = &mut out[m * d + head * dh..m * d + (head + 1) * dh];
            for j in 0..n {
                p[j] = scores[j] / total;
                let message = p[j] * w[j];
                let v = &values[(row0 + j) * d + head * dh..(row0 + j) * d + (head + 1) * dh];
                for (o, &v) in o.iter_mut().zip(v) {
                    *o += message * v;
                }
            }
        }
    }
    (out, probs)
}

/// Gradients of one molecule: (queries rows, values rows, weights block (n × n)).
#[allow(clippy::too_many_arguments)]
fn attention_molecule_backward(
    shape: &AttentionShape,
    b: usize,
    grad: &[f32],
    values: &[f32],
    pair: &[f32],
    weights: &[f32],
    probs: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (n, h, f, l, d) = (
        shape.counts[b],
        shape.heads,
        shape.features,
        shape.atoms,
        shape.width,
    );
    let dh = d / h;
    let row0 = shape.rows[b];
    let probs = &probs[shape.probs[b]..shape.probs[b] + h * n * n];
    let mut grad_queries = vec![0f32; n * h * f];
    let mut grad_values = vec![0f32; n * d];
    let mut grad_weights = vec![0f32; n * n];
    let mut d_scores = vec![0f32; n];
    for m in 0..n {
        let e = &pair[(b * l + m) * f * l..(b * l + m + 1) * f * l];
        let w = &weights[(b * l + m) * l..(b * l + m) * l + n];
        let dout = &grad[(row0 + m) * d..(row0 + m + 1) * d];
        for head in 0..h {
            let p = &probs[(head * n + m) * n..(head * n + m + 1) * n];
            let g = &dout[head * dh..(head + 1) * dh];
            let mut dot = 0.0;
            for j in 0..n {
                let v = &values[(row0 + j) * d + head * dh..(row0 + j) * d + (head + 1) * dh];
                let d_message = dot8(g, v);
                grad_weights[m * n + j] += d_message * p[j];
                let d_prob = d_message * w[j];
                d_scores[j] = d_prob;
                dot += d_prob * p[j];
                let message = p[j] * w[j];
                let gv = &mut grad_values[j * d + head * dh..j * d + (head + 1) * dh];
                for (gv, &g) in gv.iter_mut().zip(g) {
                    *gv += message * g;
                }
            }
            for j in 0..n {
                d_scores[j] = p[j] * (d_scores[j] - dot);
            }
            let gu = &mut grad_queries[m * h * f + head * f..m * h * f + (head + 1) * f];
            for k in 0..f {
                gu[k] = dot8(&d_scores, &e[k * l..k * l + n]);
            }
        }
    }
    (grad_queries, grad_values, grad_weights)
}

fn attention_forward(
    shape: &AttentionShape,
    queries: &[f32],
    values: &[f32],
    pair: &[f32],
    weights: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..shape.counts.len())
        .into_par_iter()
        .map(|b| attention_molecule(shape, b, queries, values, pair, weights))
        .collect();
    let mut out = Vec::with_capacity(
        shape
            .rows
            .last()
            .map_or(0, |r| r + shape.counts.last().unwrap())
            * shape.width,
    );
    let mut probs = Vec::with_capacity(shape.total_probs());
    for (o, p) in parts {
        out.extend(o);
        probs.extend(p);
    }
    (out, probs)
}

/// Message-attention state the backward pass reads.
#[derive(Debug, Clone)]
struct AttentionSaved {
    shape: AttentionShape,
    values: FlexTensor,
    pair: FlexTensor,
    weights: FlexTensor,
    probs: std::sync::Arc<Vec<f32>>,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 4> for AttentionBackward {
    type State = AttentionSaved;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        use rayon::prelude::*;
        let saved = ops.state;
        let shape = &saved.shape;
        let grad = grads.consume::<Flex>(&ops.node);
        let (grad, values, pair, weights) = (
            values(&grad),
            values(&saved.values),
            values(&saved.pair),
            values(&saved.weights),
        );
        let parts: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..shape.counts.len())
            .into_par_iter()
            .map(|b| {
                attention_molecule_backward(shape, b, &grad, &values, &pair, &weights, &saved.probs)
            })
            .collect();
        let (h, f, l, d) = (shape.heads, shape.features, shape.atoms, shape.width);
        let n: usize = shape.counts.iter().sum();
        let mut grad_queries = Vec::with_capacity(n * h * f);
        let mut grad_values = Vec::with_capacity(n * d);
        let mut grad_weights = vec![0f32; shape.counts.len() * l * l];
        for (b, (q, v, w)) in parts.into_iter().enumerate() {
            grad_queries.extend(q);
            grad_values.extend(v);
            let c = shape.counts[b];
            for m in 0..c {
                grad_weights[(b * l + m) * l..(b * l + m) * l + c]
                    .copy_from_slice(&w[m * c..(m + 1) * c]);
            }
        }
        let [queries, values_node, _pair, weights_node] = ops.parents;
        if let Some(node) = queries {
            grads.register::<Flex>(node.id, flex_shaped(grad_queries, &[n, h * f]));
        }
        if let Some(node) = values_node {
            grads.register::<Flex>(node.id, flex_shaped(grad_values, &[n, d]));
        }
        if let Some(node) = weights_node {
            grads.register::<Flex>(
                node.id,
                flex_shaped(grad_weights, &[shape.counts.len(), l, l]),
            );
        }
    }
}

/// Applies `rows` to every batch entry of `x` (batch × input rows × width).
fn map_rows_forward(x: &[f32], batch: usize, width: usize, rows: &SparseRows) -> Vec<f32> {
    use rayon::prelude::*;
    let output_rows = rows.output_rows();
    let input_rows = x.len().checked_div(batch * width).unwrap_or(0);
    let mut out = vec![0f32; batch * output_rows * width];
    if out.is_empty() {
        return out;
    }
    let chunk = rows_per_task(batch * output_rows, width);
    out.par_chunks_mut(chunk * width)
        .enumerate()
        .for_each(|(task, out)| {
            for (r, o) in out.chunks_mut(width).enumerate() {
                let flat = task * chunk + r;
                let (b, i) = (flat / output_rows, flat % output_rows);
                let source = &x[b * input_rows * width..(b + 1) * input_rows * width];
                for k in rows.offsets[i]..rows.offsets[i + 1] {
                    let (c, w) = (rows.columns[k] as usize, rows.weights[k]);
                    let row = &source[c * width..(c + 1) * width];
                    if w == 1.0 {
                        for (o, v) in o.iter_mut().zip(row) {
                            *o += v;
                        }
                    } else {
                        for (o, v) in o.iter_mut().zip(row) {
                            *o += w * v;
                        }
                    }
                }
            }
        });
    out
}

#[derive(Debug)]
struct MapRowsBackward;

impl Backward<Flex, 1> for MapRowsBackward {
    type State = (RowMap, usize, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (map, batch, width) = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let [x] = ops.parents;
        if let Some(node) = x {
            let out = map_rows_forward(&values(&grad), batch, width, &map.transpose);
            grads.register::<Flex>(node.id, flex_shaped(out, &[batch, map.input_rows(), width]));
        }
    }
}

/// gemm's threading rule as flex applies it: products of at least 192³
/// multiply-adds use every core.
fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= 192 * 192 * 192 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst (m×n) [+]= lhs · rhs` with explicit strides and threading.
#[allow(clippy::too_many_arguments)]
fn gemm_with(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
    threads: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= m * n);
    if k > 0 {
        assert!(lhs.len() > (m - 1) * lhs_strides.0 + (k - 1) * lhs_strides.1);
        assert!(rhs.len() > (k - 1) * rhs_strides.0 + (n - 1) * rhs_strides.1);
    }
    // SAFETY: as in `gemm`: the asserts bound every index; `dst` is a distinct borrow.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1 as isize,
            lhs_strides.0 as isize,
            rhs.as_ptr(),
            rhs_strides.1 as isize,
            rhs_strides.0 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
}

fn linear_forward(x: &[f32], rows: usize, k: usize, weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let n = bias.len();
    let mut out = Vec::with_capacity(rows * n);
    for _ in 0..rows {
        out.extend_from_slice(bias);
    }
    gemm_with(
        rows,
        n,
        k,
        &mut out,
        true,
        x,
        (k, 1),
        weight,
        (n, 1),
        parallelism(rows, n, k),
    );
    out
}

#[derive(Debug, Clone)]
struct LinearSaved {
    x: FlexTensor,
    weight: FlexTensor,
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearSaved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let saved = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let grad = values(&grad);
        let [k, n] = [
            saved.weight.layout().shape()[0],
            saved.weight.layout().shape()[1],
        ];
        let rows = grad.len() / n.max(1);
        let [x_node, weight_node, bias_node] = ops.parents;
        if let Some(node) = x_node {
            let weight = values(&saved.weight);
            let mut grad_x = vec![0f32; rows * k];
            if rows < 64 {
                // Few rows: gemm runs a transposed operand several times
                // slower than a copy of Wᵀ costs.
                let mut weight_t = vec![0f32; n * k];
                for i in 0..k {
                    for j in 0..n {
                        weight_t[j * k + i] = weight[i * n + j];
                    }
                }
                gemm_with(
                    rows,
                    k,
                    n,
                    &mut grad_x,
                    false,
                    &grad,
                    (n, 1),
                    &weight_t,
                    (k, 1),
                    parallelism(rows, k, n),
                );
            } else {
                gemm_with(
                    rows,
                    k,
                    n,
                    &mut grad_x,
                    false,
                    &grad,
                    (n, 1),
                    &weight,
                    (1, n),
                    parallelism(rows, k, n),
                );
            }
            grads.register::<Flex>(node.id, flex_shaped(grad_x, &[rows, k]));
        }
        if let Some(node) = weight_node {
            let x = values(&saved.x);
            let mut grad_w = vec![0f32; k * n];
            gemm_with(
                k,
                n,
                rows,
                &mut grad_w,
                false,
                &x,
                (1, k),
                &grad,
                (n, 1),
                parallelism(k, n, rows),
            );
            grads.register::<Flex>(node.id, flex_shaped(grad_w, &[k, n]));
        }
        if let Some(node) = bias_node {
            let mut grad_b = vec![0f32; n];
            for row in grad.chunks(n) {
                for (g, v) in grad_b.iter_mut().zip(row) {
                    *g += v;
                }
            }
            grads.register::<Flex>(node.id, flex_shaped(grad_b, &[n]));
        }
    }
}

#[cfg(test)]
mod linear_tests {
    use burn::module::Param;
    use burn::nn::Linear;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    fn close(name: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{name}");
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * scale,
                "{name}[{i}]: fused {g} vs burn {w}"
            );
        }
    }

    /// The fused linear equals burn's `Linear` in values and in the
    /// gradients of input, weight and bias, for many rows (threaded, a
    /// transposed operand) and few (the copied-Wᵀ path), rank 2 and 3.
    #[test]
    fn fused_linear_matches_burns_linear() {
        let device = Device::flex().autodiff();
        device.seed(21);
        for (shape, k, n) in [
            (vec![700usize], 96usize, 80usize),
            (vec![5], 7, 3),
            (vec![3, 9], 16, 24),
        ] {
            let linear = Linear {
                weight: Param::from_tensor(Tensor::random(
                    [k, n],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                )),
                bias: Some(Param::from_tensor(Tensor::random(
                    [n],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                ))),
            };
            let rows: usize = shape.iter().product();
            let x = Tensor::<2>::random([rows, k], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let probe = Tensor::<2>::random([rows, n], Distribution::Normal(0.0, 1.0), &device);
            let (fused, burn) = if shape.len() == 2 {
                // Separate reshapes: each backward consumes its own graph.
                let x3 = || x.clone().reshape([shape[0], shape[1], k]);
                (
                    apply_linear(&linear, x3()).reshape([rows, n]),
                    linear.forward(x3()).reshape([rows, n]),
                )
            } else {
                (apply_linear(&linear, x.clone()), linear.forward(x.clone()))
            };
            let case = format!("{shape:?}×{k}→{n}");
            close(
                &format!("{case} values"),
                &host(fused.clone()),
                &host(burn.clone()),
            );
            let fused_grads = (fused * probe.clone()).sum().backward();
            let burn_grads = (burn * probe).sum().backward();
            close(
                &format!("{case} dx"),
                &host(x.grad(&fused_grads).unwrap()),
                &host(x.grad(&burn_grads).unwrap()),
            );
            let w = linear.weight.val();
            close(
                &format!("{case} dW"),
                &host(w.grad(&fused_grads).unwrap()),
                &host(w.grad(&burn_grads).unwrap()),
            );
            let b = linear.bias.as_ref().unwrap().val();
            close(
                &format!("{case} db"),
                &host(b.grad(&fused_grads).unwrap()),
                &host(b.grad(&burn_grads).unwrap()),
            );
        }
    }

    /// `relu(x·W + base)` fused equals the composite, gradients included
    /// (about half the pre-activations negative).
    #[test]
    fn fused_linear_add_relu_matches_the_composite() {
        let device = Device::flex().autodiff();
        device.seed(22);
        let (rows, k, n) = (300, 40, 24);
        let random = |shape: [usize; 2]| {
            Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let (x, w, base) = (random([rows, k]), random([k, n]), random([rows, n]));
        let probe = Tensor::<2>::random([rows, n], Distribution::Normal(0.0, 1.0), &device);
        let fused = linear_add_relu(x.clone(), w.clone(), base.clone());
        let composite = burn::tensor::activation::relu(x.clone().matmul(w.clone()) + base.clone());
        close("values", &host(fused.clone()), &host(composite.clone()));
        let zeros = host(composite.clone())
            .iter()
            .filter(|v| **v == 0.0)
            .count();
        assert!(
            zeros > rows * n / 4,
            "the ReLU cuts somewhere ({zeros} zeros)"
        );
        let fused_grads = (fused * probe.clone()).sum().backward();
        let composite_grads = (composite * probe).sum().backward();
        for (name, t) in [("x", &x), ("W", &w), ("base", &base)] {
            close(
                name,
                &host(t.grad(&fused_grads).unwrap()),
                &host(t.grad(&composite_grads).unwrap()),
            );
        }
    }
}

fn linear_add_relu_forward(
    x: &[f32],
    rows: usize,
    k: usize,
    weight: &[f32],
    base: &[f32],
) -> Vec<f32> {
    use rayon::prelude::*;
    let n = base.len() / rows.max(1);
    let mut out = base.to_vec();
    gemm_with(
        rows,
        n,
        k,
        &mut out,
        true,
        x,
        (k, 1),
        weight,
        (n, 1),
        parallelism(rows, n, k),
    );
    out.par_chunks_mut(16_384).for_each(|chunk| {
        for v in chunk {
            *v = v.max(0.0);
        }
    });
    out
}

#[derive(Debug, Clone)]
struct LinearAddReluSaved {
    x: FlexTensor,
    weight: FlexTensor,
    output: FlexTensor,
}

#[derive(Debug)]
struct LinearAddReluBackward;

impl Backward<Flex, 3> for LinearAddReluBackward {
    type State = LinearAddReluSaved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        use rayon::prelude::*;
        let saved = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let [k, n] = [
            saved.weight.layout().shape()[0],
            saved.weight.layout().shape()[1],
        ];
        // ReLU's gradient: pass where the output is positive.
        let mut pre = values(&grad).into_owned();
        let output = values(&saved.output);
        pre.par_chunks_mut(16_384)
            .zip(output.par_chunks(16_384))
            .for_each(|(g, y)| {
                for (g, y) in g.iter_mut().zip(y) {
                    if *y <= 0.0 {
                        *g = 0.0;
                    }
                }
            });
        let rows = pre.len() / n.max(1);
        let [x_node, weight_node, base_node] = ops.parents;
        if let Some(node) = x_node {
            let weight = values(&saved.weight);
            let mut grad_x = vec![0f32; rows * k];
            gemm_with(
                rows,
                k,
                n,
                &mut grad_x,
                false,
                &pre,
                (n, 1),
                &weight,
                (1, n),
                parallelism(rows, k, n),
            );
            grads.register::<Flex>(node.id, flex_shaped(grad_x, &[rows, k]));
        }
        if let Some(node) = weight_node {
            let x = values(&saved.x);
            let mut grad_w = vec![0f32; k * n];
            gemm_with(
                k,
                n,
                rows,
                &mut grad_w,
                false,
                &x,
                (1, k),
                &pre,
                (n, 1),
                parallelism(k, n, rows),
            );
            grads.register::<Flex>(node.id, flex_shaped(grad_w, &[k, n]));
        }
        if let Some(node) = base_node {
            grads.register::<Flex>(node.id, flex_shaped(pre, &[rows, n]));
        }
    }
}
