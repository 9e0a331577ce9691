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
        && matches!(tensor.device().inner().as_dispatch(), DispatchDevice::Flex(_))
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
        assert_eq!(total, rows, "gru_scan: active counts do not add up to the rows");
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
    mut cache: Option<&mut [f32]>,
) -> Vec<f32> {
    let (d, n) = (shape.width, shape.rows);
    let mut out = vec![0f32; 2 * n * d];
    let block = 5 * n * d;
    let (out_fwd, out_rev) = out.split_at_mut(n * d);
    let (cache_fwd, cache_rev) = match cache.as_deref_mut() {
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
    let (reset, update, candidate, hidden_n, previous) = (part(0), part(1), part(2), part(3), part(4));
    let mut grad_gates_in = vec![0f32; n * 3 * d];
    let mut grad_hidden_gates = vec![0f32; n * 3 * d];
    // Gradient flowing into the states of step t from step t+1 (rows 0..active[t+1]).
    let mut carry = vec![0f32; b * d];
    let mut next_carry = vec![0f32; b * d];
    let steps = shape.active.len();
    for t in (0..steps).rev() {
        let (a, row) = (shape.active[t], shape.offsets[t]);
        let carried = if t + 1 < steps { shape.active[t + 1] } else { 0 };
        for r in 0..a {
            let at = (row + r) * d;
            let gi = &mut grad_gates_in[(row + r) * 3 * d..(row + r + 1) * 3 * d];
            let ghg = &mut grad_hidden_gates[(row + r) * 3 * d..(row + r + 1) * 3 * d];
            let direct = &mut next_carry[r * d..(r + 1) * d];
            for j in 0..d {
                let dh = grad_out[at + j] + if r < carried { carry[r * d + j] } else { 0.0 };
                let (rg, zg, ng, hn, hp) =
                    (reset[at + j], update[at + j], candidate[at + j], hidden_n[at + j], previous[at + j]);
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
            weight,
            (1, 3 * d),
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
        match GruScanBackward.prepare::<C>(nodes).compute_bound().stateful() {
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
}
