//! CoMPT's message-passing attention: queries from atoms, keys from the
//! embedding of the atom *pair*, values from atoms, scores in both directions
//! and a learnt topological-distance kernel (COMPT.md §3).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::super::fused;
use super::{mish, xavier_linear};

/// How topological distances become attention weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DistanceKernel {
    /// `softmax(−λD)` over the neighbour index.
    Softmax,
    /// `exp(−λD)` element-wise.
    Exp,
}

/// Additive bias that removes padded columns from a softmax (and from the
/// exp kernel): large enough that exp underflows to exactly 0, finite so a
/// row of padding alone never produces NaN.
pub(crate) const PAD_BIAS: f64 = -1e9;

/// Per-batch tensors every attention layer shares, prepared once per forward.
#[derive(Debug, Clone)]
pub struct PairContext {
    /// Bond features with a constant 1 appended, laid out (B, L, f+1, L) so
    /// that the scores of all heads are one matmul batched over (molecule, atom).
    pub features_by_row: Tensor<4>,
    /// Topological distances (B, L, L).
    pub distances: Tensor<3>,
    /// 0 for a real atom, [`PAD_BIAS`] for padding, (B, 1, L): added along the
    /// neighbour (last) index.
    pub column_bias: Tensor<3>,
    /// `2 − I` (L, L): turns one softmax into `out + in − diag(out)`.
    pub two_minus_eye: Tensor<2>,
}

/// One message-attention block (the edge update of the reference is not computed).
#[derive(Module, Debug)]
pub struct MessageAttention {
    /// W_q.
    pub query: Linear,
    /// W_k, applied to the pair embedding.
    pub key: Linear,
    /// W_v.
    pub value: Linear,
    /// W_o.
    pub output: Linear,
    /// λ, the learnt scale of the distances inside the kernel (one scalar).
    pub distance_scale: Param<Tensor<1>>,
    /// Number of heads h.
    pub heads: usize,
    /// Which kernel turns λD into weights.
    #[module(skip)]
    pub kernel: DistanceKernel,
}

impl MessageAttention {
    /// A fresh block with Xavier-uniform weights and λ = 0.1.
    pub fn new(d_model: usize, heads: usize, kernel: DistanceKernel, device: &Device) -> Self {
        Self {
            query: xavier_linear(d_model, d_model, device),
            key: xavier_linear(d_model, d_model, device),
            value: xavier_linear(d_model, d_model, device),
            output: xavier_linear(d_model, d_model, device),
            distance_scale: Param::from_tensor(Tensor::from_floats([0.1], device)),
            heads,
            kernel,
        }
    }

    /// Distance-kernel weights times `2 − I`, (B, L, L): the factor that
    /// multiplies the softmax of the scores.
    pub(crate) fn kernel_weights(&self, pair: &PairContext) -> Tensor<3> {
        let lambda = self.distance_scale.val().reshape([1, 1, 1]);
        let logits = (pair.distances.clone() * lambda).neg() + pair.column_bias.clone();
        let kernel = match self.kernel {
            DistanceKernel::Softmax => softmax(logits, 2),
            DistanceKernel::Exp => logits.exp(),
        };
        kernel * pair.two_minus_eye.clone().unsqueeze::<3>()
    }

    /// The map from node states to their projection onto the (bond
    /// features, 1) basis per head: `u = n W_u + b_u`, reshaped to
    /// (…, h, f+1), satisfies `u_m·(e_mn, 1) = q_m·k_mn / √d_k`.
    ///
    /// With E = √d (e W_e + b_e) and k = E W_k + b_k, `q·k = (q Pᵀ)·(e, 1)`
    /// where P = [√d W_e; √d b_e] W_k + [0; b_k] is (f+1, d); heads take
    /// disjoint column blocks of P, so W_q folds into a block-diagonal
    /// (d, h·(f+1)) map and no (B, L, L, d) key tensor is ever built.
    /// Returns (W_u (d, h·(f+1)), b_u (1, h·(f+1))).
    pub(crate) fn pair_query_map(&self, edge_embed: &Linear) -> (Tensor<2>, Tensor<2>) {
        let edge_weight = edge_embed.weight.val(); // (f, d)
        let [bond_dim, d_model] = edge_weight.dims();
        let features = bond_dim + 1;
        let heads = self.heads;
        let d_head = d_model / heads;
        let device = edge_weight.device();
        let dtype = edge_weight.dtype();
        let zeros = |n: usize| Tensor::<1>::zeros([n], (&device, dtype));

        let edge_bias = edge_embed
            .bias
            .as_ref()
            .map(|b| b.val())
            .unwrap_or_else(|| zeros(d_model));
        let basis =
            Tensor::cat(vec![edge_weight, edge_bias.unsqueeze::<2>()], 0) * (d_model as f64).sqrt();
        let mut projection = basis.matmul(self.key.weight.val()); // (f+1, d)
        if let Some(key_bias) = &self.key.bias {
            // Only the constant row carries b_k.
            let last_row: Vec<f32> = (0..features)
                .map(|i| (i + 1 == features) as u8 as f32)
                .collect();
            let selector = Tensor::<1>::from_data(last_row.as_slice(), (&device, dtype))
                .reshape([features, 1]);
            projection = projection + selector * key_bias.val().unsqueeze::<2>();
        }
        let projection = projection / (d_head as f64).sqrt();

        // Block-diagonal (d, h·(f+1)): entry (i, c) kept iff row i and column c share a head.
        let mut block = vec![0f32; d_model * heads * features];
        for i in 0..d_model {
            let head = i / d_head;
            for f in 0..features {
                block[i * heads * features + head * features + f] = 1.0;
            }
        }
        let block = Tensor::<1>::from_data(block.as_slice(), (&device, dtype))
            .reshape([d_model, heads * features]);
        let per_head = projection.transpose().repeat_dim(1, heads) * block;

        let weight = self.query.weight.val().matmul(per_head.clone());
        let bias = self
            .query
            .bias
            .as_ref()
            .map(|b| b.val())
            .unwrap_or_else(|| zeros(d_model));
        (weight, bias.unsqueeze::<2>().matmul(per_head))
    }

    /// `Σ_n msg_mn v_n` (B, L, d) from pair queries `u` (B, L, h, f+1) and values (B, L, d).
    fn gather_messages(&self, u: Tensor<4>, values: Tensor<3>, pair: &PairContext) -> Tensor<3> {
        let [batch, atoms, d_model] = values.dims();
        let heads = self.heads;
        let d_head = d_model / heads;
        // Scores (B, m, h, n): one (h × f+1)·(f+1 × L) product per (molecule, atom m).
        let scores =
            u.matmul(pair.features_by_row.clone()) + pair.column_bias.clone().unsqueeze_dim::<4>(1);
        // Symmetric pair features make in_nm = out_nm, so one softmax gives
        // out + in − diag(out) = (2 − I) ⊙ softmax(out); fold that and the
        // distance kernel into one (B, m, 1, n) factor.
        let weights = self.kernel_weights(pair).unsqueeze_dim::<4>(2);
        let message = (softmax(scores, 3) * weights).swap_dims(1, 2); // (B, h, m, n)
        let values = values
            .reshape([batch, atoms, heads, d_head])
            .swap_dims(1, 2);
        message
            .matmul(values)
            .swap_dims(1, 2)
            .reshape([batch, atoms, d_model])
    }

    /// Node update `mish(W_o Σ_n msg_mn v_n)` for normalised node states (B, L, d).
    pub fn forward(&self, nodes: Tensor<3>, edge_embed: &Linear, pair: &PairContext) -> Tensor<3> {
        let [batch, atoms, _] = nodes.dims();
        let (weight, bias) = self.pair_query_map(edge_embed);
        let features = weight.dims()[1] / self.heads;
        let u = (nodes.clone().matmul(weight.unsqueeze::<3>()) + bias.unsqueeze::<3>())
            .reshape([batch, atoms, self.heads, features]);
        let gathered = self.gather_messages(u, self.value.forward(nodes), pair);
        mish(self.output.forward(gathered))
    }

    /// [`forward`](Self::forward) on the real atoms only, (N, d) → (N, d):
    /// only the pair scores and the message sum see the padded layout.
    pub fn forward_packed(
        &self,
        nodes: Tensor<2>,
        edge_embed: &Linear,
        pair: &PairContext,
        layout: &AtomLayout,
    ) -> Tensor<2> {
        let (weight, bias) = self.pair_query_map(edge_embed);
        if fused::supported(&nodes) && layout.prefix {
            // One kernel over the real atoms of each molecule: no padding,
            // no (B, L, h, L) score tensor, no layout copies.
            let queries = nodes.clone().matmul(weight) + bias;
            let values = fused::apply_linear(&self.value, nodes);
            let gathered = fused::message_attention(
                queries,
                values,
                pair.features_by_row.clone(),
                self.kernel_weights(pair),
                &layout.counts,
                self.heads,
            );
            return mish(fused::apply_linear(&self.output, gathered));
        }
        self.forward_packed_padded(nodes, edge_embed, pair, layout)
    }

    /// [`forward_packed`](Self::forward_packed) through the padded (B, L)
    /// layout with composite tensor ops (every backend).
    pub fn forward_packed_padded(
        &self,
        nodes: Tensor<2>,
        edge_embed: &Linear,
        pair: &PairContext,
        layout: &AtomLayout,
    ) -> Tensor<2> {
        let (weight, bias) = self.pair_query_map(edge_embed);
        let features = weight.dims()[1] / self.heads;
        let u = layout.pad(nodes.clone().matmul(weight) + bias);
        let [batch, atoms, _] = u.dims();
        let u = u.reshape([batch, atoms, self.heads, features]);
        let gathered = self.gather_messages(u, layout.pad(self.value.forward(nodes)), pair);
        mish(self.output.forward(layout.unpad(gathered)))
    }
}

/// Where the N real atoms of a padded (B, L) batch live, for moving per-atom
/// tensors between the packed (N, ·) and padded (B, L, ·) layouts.
#[derive(Debug, Clone)]
pub struct AtomLayout {
    /// Flat (B·L) row of each real atom, (N).
    real_rows: Tensor<1, Int>,
    /// Packed row of each padded position, N (a zero row) for padding, (B·L).
    padded_rows: Tensor<1, Int>,
    batch: usize,
    atoms: usize,
    /// N.
    pub real_atoms: usize,
    /// Real atoms of each molecule.
    pub counts: Vec<usize>,
    /// Whether every molecule's real atoms come first in its rows (then its
    /// packed rows are its atoms in order, which the fused kernel reads).
    prefix: bool,
}

impl AtomLayout {
    /// Layout of a (B, L) mask of 1/0 (reads the mask back to the host).
    pub fn new(mask: &Tensor<2>) -> Self {
        let [batch, atoms] = mask.dims();
        let values: Vec<f32> = mask
            .clone()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("mask converts to f32");
        let real: Vec<i64> = (0..batch * atoms)
            .filter(|&i| values[i] > 0.5)
            .map(|i| i as i64)
            .collect();
        let counts = (0..batch)
            .map(|j| {
                values[j * atoms..(j + 1) * atoms]
                    .iter()
                    .filter(|v| **v > 0.5)
                    .count()
            })
            .collect();
        let mut layout = Self::from_real_rows(real, batch, atoms, &mask.device(), counts);
        layout.prefix = (0..batch).all(|j| {
            let row = &values[j * atoms..(j + 1) * atoms];
            let n = row.iter().take_while(|v| **v > 0.5).count();
            row[n..].iter().all(|v| *v <= 0.5)
        });
        layout
    }

    /// Layout of molecules whose `counts[j]` real atoms come first in rows
    /// of `atoms` (the batcher's layout), built on the host.
    pub fn from_counts(counts: &[usize], atoms: usize, device: &Device) -> Self {
        let real: Vec<i64> = counts
            .iter()
            .enumerate()
            .flat_map(|(j, &n)| (0..n).map(move |i| (j * atoms + i) as i64))
            .collect();
        Self::from_real_rows(real, counts.len(), atoms, device, counts.to_vec())
    }

    fn from_real_rows(
        real: Vec<i64>,
        batch: usize,
        atoms: usize,
        device: &Device,
        counts: Vec<usize>,
    ) -> Self {
        let mut padded = vec![real.len() as i64; batch * atoms];
        for (k, &i) in real.iter().enumerate() {
            padded[i as usize] = k as i64;
        }
        let real_atoms = real.len();
        Self {
            real_atoms,
            real_rows: Tensor::from_data(TensorData::new(real, [real_atoms]), device),
            padded_rows: Tensor::from_data(TensorData::new(padded, [batch * atoms]), device),
            batch,
            atoms,
            counts,
            prefix: true,
        }
    }

    /// (N, c) → (B, L, c) with zero rows at padding.
    pub fn pad(&self, x: Tensor<2>) -> Tensor<3> {
        let width = x.dims()[1];
        let zero = Tensor::<2>::zeros([1, width], (&x.device(), x.dtype()));
        Tensor::cat(vec![x, zero], 0)
            .select(0, self.padded_rows.clone())
            .reshape([self.batch, self.atoms, width])
    }

    /// (B, L) → (N) for integer per-atom values (positions).
    pub fn unpad_int(&self, x: Tensor<2, Int>) -> Tensor<1, Int> {
        x.reshape([self.batch * self.atoms])
            .select(0, self.real_rows.clone())
    }

    /// (B, L, c) → (N, c), the real atoms in batch order.
    pub fn unpad(&self, x: Tensor<3>) -> Tensor<2> {
        let width = x.dims()[2];
        x.reshape([self.batch * self.atoms, width])
            .select(0, self.real_rows.clone())
    }
}

#[cfg(test)]
impl MessageAttention {
    /// The reference's direct form: builds the (B, L, L, d) pair keys, scores
    /// both directions separately and returns (node update, out-softmax,
    /// in-softmax), the softmaxes as (B, h, L, L). Pair features (B, L, L, f),
    /// mask (B, L) of 1/0.
    pub(crate) fn forward_direct(
        &self,
        nodes: Tensor<3>,
        edge_embed: &Linear,
        pair_features: Tensor<4>,
        distances: Tensor<3>,
        mask: Tensor<2>,
    ) -> (Tensor<3>, Tensor<4>, Tensor<4>) {
        let [batch, atoms, d_model] = nodes.dims();
        let heads = self.heads;
        let d_head = d_model / heads;
        let scale = (d_head as f64).sqrt();

        let edges = edge_embed.forward(pair_features) * (d_model as f64).sqrt();
        let keys = self
            .key
            .forward(edges)
            .reshape([batch, atoms, atoms, heads, d_head]);
        let queries = self
            .query
            .forward(nodes.clone())
            .reshape([batch, atoms, 1, heads, d_head]);
        // out[b, m, n, h] = q_m · k_mn
        let out = (queries.clone() * keys.clone())
            .sum_dim(4)
            .reshape([batch, atoms, atoms, heads])
            / scale;
        // in[b, n, m, h] = q_n · k_mn
        let incoming = (queries * keys.swap_dims(1, 2))
            .sum_dim(4)
            .reshape([batch, atoms, atoms, heads])
            / scale;
        let column_bias = ((mask.clone() - 1.0) * -PAD_BIAS).reshape([batch, 1, atoms, 1]);
        let out = softmax(out + column_bias.clone(), 2).permute([0, 3, 1, 2]);
        let incoming = softmax(incoming + column_bias, 2).permute([0, 3, 1, 2]);

        let eye = Tensor::<2>::eye(atoms, &nodes.device())
            .cast(nodes.dtype())
            .reshape([1, 1, atoms, atoms]);
        let message = out.clone() + incoming.clone() - out.clone() * eye;

        let lambda = self.distance_scale.val().reshape([1, 1, 1]);
        let mut scaled = distances * lambda;
        // Padded columns to +∞ (here: huge) before the kernel.
        scaled = scaled + ((mask - 1.0) * PAD_BIAS).reshape([batch, 1, atoms]);
        let kernel = match self.kernel {
            DistanceKernel::Softmax => softmax(scaled.neg(), 2),
            DistanceKernel::Exp => scaled.neg().exp(),
        };
        let message = message * kernel.unsqueeze_dim::<4>(1);

        let values = self
            .value
            .forward(nodes)
            .reshape([batch, atoms, heads, d_head])
            .swap_dims(1, 2);
        let gathered = message
            .matmul(values)
            .swap_dims(1, 2)
            .reshape([batch, atoms, d_model]);
        (mish(self.output.forward(gathered)), out, incoming)
    }
}
