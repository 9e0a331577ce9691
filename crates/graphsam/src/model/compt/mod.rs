//! CoMPT, the Communicative Message Passing Transformer (Chen et al., IJCAI
//! 2021), as the GraphSAM paper trains it from scratch; the specification
//! is `docs/COMPT.md`. Two departures from the reference, both keeping its
//! numbers: attention scores are computed in a factored form that never
//! builds the (B, L, L, d) pair-key tensor, and the GRU readout runs over
//! real atoms only, so a molecule's prediction does not depend on its batch.

mod attention;
mod norm;
mod readout;
#[cfg(test)]
mod tests;

pub use attention::{AtomLayout, DistanceKernel, MessageAttention, PairContext};
pub use norm::{LayerNorm, Norm, NormKind, ScaleNorm};
pub use readout::{GruReadout, ReadoutPlan};

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Embedding, Initializer, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::flops::{Grads, PassFlops};
use attention::PAD_BIAS;

/// Width of the CoMPT atom feature vector (DESIGN.md §5), from graphsam-chem.
pub const ATOM_FEATURES: usize = crate::features::FeatureSet::Compt.atom_dim();
/// Width of the CoMPT bond feature vector (DESIGN.md §5), from graphsam-chem.
pub const BOND_FEATURES: usize = crate::features::FeatureSet::Compt.bond_dim();

/// Hyper-parameters of one CoMPT model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComptConfig {
    /// Atom feature width (115).
    pub atom_dim: usize,
    /// Bond feature width (13).
    pub bond_dim: usize,
    /// Hidden width d.
    pub d_model: usize,
    /// Number of encoder layers N.
    pub layers: usize,
    /// Attention heads h (must divide `d_model`).
    pub heads: usize,
    /// Distance kernel of every attention layer.
    pub kernel: DistanceKernel,
    /// Normalisation used throughout.
    pub norm: NormKind,
    /// Layers of the task head, counting its final Linear(d→n_tasks).
    pub generator_layers: usize,
    /// Number of outputs (tasks).
    pub n_tasks: usize,
    /// Rows of the position embedding: the largest position index + 1
    /// (positions are atom index + 1, 0 for padding).
    pub max_atoms: usize,
    /// Dropout probability in the task head (0 in the paper's runs).
    pub dropout: f64,
}

/// BBBP's row of the paper's table: (layers, heads, kernel, norm, generator layers).
const BBBP_ROW: (usize, usize, DistanceKernel, NormKind, usize) =
    (4, 4, DistanceKernel::Exp, NormKind::LayerNorm, 2);

impl ComptConfig {
    /// The paper's settings for a MoleculeNet dataset (COMPT.md table);
    /// names the table does not cover get BBBP's row (see [`Self::paper_settings`]).
    pub fn for_dataset(name: &str, n_tasks: usize) -> Self {
        Self::from_row(Self::table_row(name).unwrap_or(BBBP_ROW), n_tasks)
    }

    /// The per-dataset settings of the paper's table for `name` (ESOL,
    /// Lipophilicity, Tox21, SIDER, ClinTox, BBBP), or `None` for a
    /// dataset the table does not cover.
    pub fn paper_settings(name: &str, n_tasks: usize) -> Option<Self> {
        Self::table_row(name).map(|row| Self::from_row(row, n_tasks))
    }

    /// (layers, heads, kernel, norm, generator layers) of the paper's table.
    fn table_row(name: &str) -> Option<(usize, usize, DistanceKernel, NormKind, usize)> {
        use DistanceKernel::{Exp, Softmax};
        use NormKind::{LayerNorm as Layer, ScaleNorm as Scale};
        Some(match name.to_ascii_lowercase().as_str() {
            "esol" | "delaney" => (3, 4, Softmax, Scale, 2),
            "lipophilicity" | "lipo" => (3, 8, Exp, Layer, 2),
            "tox21" => (8, 4, Exp, Layer, 4),
            "sider" => (4, 4, Softmax, Scale, 2),
            "clintox" => (4, 4, Exp, Layer, 2),
            "bbbp" => BBBP_ROW,
            _ => return None,
        })
    }

    fn from_row(
        (layers, heads, kernel, norm, generator_layers): (
            usize,
            usize,
            DistanceKernel,
            NormKind,
            usize,
        ),
        n_tasks: usize,
    ) -> Self {
        Self {
            atom_dim: ATOM_FEATURES,
            bond_dim: BOND_FEATURES,
            d_model: 256,
            layers,
            heads,
            kernel,
            norm,
            generator_layers,
            n_tasks,
            // Positions 1..=atoms of molecules below the default atom limit, 0 for padding.
            max_atoms: crate::data::COMPT_ATOM_LIMIT + 1,
            dropout: 0.0,
        }
    }

    /// A small model for tests: d 16, 2 layers, 2 heads, exp kernel, layer norm.
    pub fn tiny(n_tasks: usize) -> Self {
        Self {
            d_model: 16,
            layers: 2,
            heads: 2,
            ..Self::for_dataset("bbbp", n_tasks)
        }
    }

    /// Why this configuration cannot build a model, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("atom_dim", self.atom_dim),
            ("bond_dim", self.bond_dim),
            ("d_model", self.d_model),
            ("heads", self.heads),
            ("generator_layers", self.generator_layers),
            ("n_tasks", self.n_tasks),
            ("max_atoms", self.max_atoms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("CoMPT config: {name} must be at least 1"));
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return Err(format!(
                "CoMPT config: d_model {} is not divisible by heads {}",
                self.d_model, self.heads
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "CoMPT config: dropout {} is outside [0, 1)",
                self.dropout
            ));
        }
        Ok(())
    }

    /// Parameter count of the model this configuration builds, from the
    /// architecture (checked against the built module by a test).
    pub fn num_params(&self) -> usize {
        let d = self.d_model;
        let linear = |i: usize, o: usize| i * o + o;
        let norm = match self.norm {
            NormKind::LayerNorm => 2 * d,
            NormKind::ScaleNorm => 1,
        };
        let embeddings = linear(self.atom_dim, d) + self.max_atoms * d + linear(self.bond_dim, d);
        let layer = 4 * linear(d, d) + 1 + linear(d, d) + norm;
        let readout = d + 4 * linear(d, 3 * d) + linear(2 * d, d);
        let head = (self.generator_layers - 1) * (linear(d, d) + norm) + linear(d, self.n_tasks);
        embeddings + self.layers * layer + norm + readout + head
    }

    /// Build a model with fresh parameters (Xavier-uniform for every
    /// parameter with ≥ 2 dimensions).
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails: configurations are set by the
    /// program, not read from user data.
    pub fn init(&self, device: &Device) -> Compt {
        if let Err(message) = self.validate() {
            panic!("{message}");
        }
        let d = self.d_model;
        // Row 0 is the padding position; the reference zeroes it (padding_idx).
        let position_weight = Initializer::XavierUniform { gain: 1.0 }
            .init_with::<2, _>([self.max_atoms, d], Some(d), Some(self.max_atoms), device)
            .into_value()
            .slice_assign([0..1, 0..d], Tensor::zeros([1, d], device))
            // A fresh leaf, so the parameter is trainable on an autodiff device.
            .detach();
        Compt {
            node_embed: xavier_linear(self.atom_dim, d, device),
            position_embed: Embedding {
                weight: Param::from_tensor(position_weight),
            },
            edge_embed: xavier_linear(self.bond_dim, d, device),
            layers: (0..self.layers)
                .map(|_| EncoderLayer {
                    norm: Norm::new(self.norm, d, device),
                    attention: MessageAttention::new(d, self.heads, self.kernel, device),
                    feed_forward: xavier_linear(d, d, device),
                })
                .collect(),
            final_norm: Norm::new(self.norm, d, device),
            readout: GruReadout::new(d, device),
            head: (1..self.generator_layers)
                .map(|_| HeadBlock {
                    linear: xavier_linear(d, d, device),
                    norm: Norm::new(self.norm, d, device),
                    dropout: DropoutConfig::new(self.dropout).init(),
                })
                .collect(),
            output: xavier_linear(d, self.n_tasks, device),
            d_model: d,
        }
    }
}

/// Mish, `x·tanh(softplus(x))`, written with one `exp` and arithmetic:
/// with n = eˣ, tanh(ln(1+n)) = n(n+2)/(n(n+2)+2). burn's `mish` takes
/// about twice as many passes (thresholded softplus) and its CPU `tanh`
/// goes through f64. Clamping at 20 before `exp` is exact in f32/f64 (the
/// ratio is 1 to within rounding there) and keeps every term finite. On the
/// flex CPU backend it is one fused kernel (`model::fused`).
pub fn mish<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if super::fused::supported(&x) {
        return super::fused::mish(x);
    }
    mish_composite(x)
}

/// [`mish`] as composite tensor ops (every backend).
pub fn mish_composite<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let n = x.clone().clamp_max(20.0).exp();
    let p = n.clone() * (n + 2.0);
    x * (p.clone() / (p + 2.0))
}

/// Linear(d_in→d_out) with a Xavier-uniform weight and PyTorch's default bias
/// (U(±1/√d_in), which is burn's default initializer for a bias).
pub(crate) fn xavier_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let weight = Initializer::XavierUniform { gain: 1.0 }.init_with(
        [d_in, d_out],
        Some(d_in),
        Some(d_out),
        device,
    );
    let bias = Initializer::KaimingUniform {
        gain: 1.0 / 3f64.sqrt(),
        fan_out_only: false,
    }
    .init_with([d_out], Some(d_in), Some(d_out), device);
    Linear {
        weight,
        bias: Some(bias),
    }
}

/// One batch of molecules, padded to the batch's largest molecule L.
#[derive(Debug, Clone)]
pub struct ComptInput {
    /// Atom features (B, L, atom_dim); zero rows for padding.
    pub node_features: Tensor<3>,
    /// Bond features of every atom pair (B, L, L, bond_dim); zero for
    /// non-bonded pairs and padding; must be symmetric in the two atom indices.
    pub pair_features: Tensor<4>,
    /// Topological distances (B, L, L); a large finite value between fragments.
    pub distances: Tensor<3>,
    /// 1.0 for a real atom, 0.0 for padding (B, L).
    pub atom_mask: Tensor<2>,
    /// Atom index + 1, 0 for padding (B, L); must be below `max_atoms`.
    pub positions: Tensor<2, Int>,
    /// `pair_features` with a constant 1 appended and laid out
    /// (B, L, bond_dim+1, L), the form the factored attention scores read;
    /// derived on the host by [`from_host`](Self::from_host) (see
    /// [`pair_by_row_host`]) because the device transpose costs more than
    /// the whole attention.
    pub pair_by_row: Tensor<4>,
    /// Real atoms of each molecule, known on the host, so a pass never
    /// reads the mask back from the device.
    pub atom_counts: Vec<usize>,
    /// Packed ↔ padded row maps of the real atoms.
    pub layout: AtomLayout,
    /// The GRU readout's row bookkeeping.
    pub readout_plan: ReadoutPlan,
}

/// Host layout of [`ComptInput::pair_by_row`] from row-major (B, L, L, f) pair features.
pub fn pair_by_row_host(batch_size: usize, max_atoms: usize, pair: &[f32]) -> Vec<f32> {
    let l = max_atoms;
    let f = pair.len() / (batch_size * l * l).max(1);
    let mut out = vec![0f32; batch_size * l * (f + 1) * l];
    for row in 0..batch_size * l {
        let block = &mut out[row * (f + 1) * l..(row + 1) * (f + 1) * l];
        for n in 0..l {
            let src = &pair[(row * l + n) * f..(row * l + n + 1) * f];
            for (k, v) in src.iter().enumerate() {
                block[k * l + n] = *v;
            }
            block[f * l + n] = 1.0;
        }
    }
    out
}

impl ComptInput {
    /// Upload a batch from row-major host buffers.
    ///
    /// # Panics
    /// If a buffer's length does not match `batch_size` and `max_atoms`
    /// (the batcher's contract, not user data).
    #[allow(clippy::too_many_arguments)]
    pub fn from_host(
        batch_size: usize,
        max_atoms: usize,
        node: &[f32],
        pair: &[f32],
        dist: &[f32],
        mask: &[f32],
        positions: &[i64],
        device: &Device,
    ) -> Self {
        let (b, l) = (batch_size, max_atoms);
        assert!(
            l > 0 && node.len().is_multiple_of(b * l) && pair.len().is_multiple_of(b * l * l),
            "CoMPT batch: node ({}) / pair ({}) buffers do not fit {b} molecules of {l} atoms",
            node.len(),
            pair.len()
        );
        let atom_dim = node.len() / (b * l);
        let bond_dim = pair.len() / (b * l * l);
        for (name, len, want) in [
            ("dist", dist.len(), b * l * l),
            ("mask", mask.len(), b * l),
            ("positions", positions.len(), b * l),
        ] {
            assert_eq!(
                len, want,
                "CoMPT batch: `{name}` has {len} values, expected {want} for {b} molecules of {l} atoms"
            );
        }
        let atom_counts = prefix_counts(mask, b, l);
        Self {
            layout: AtomLayout::from_counts(&atom_counts, l, device),
            readout_plan: ReadoutPlan::from_counts(&atom_counts, l, device),
            atom_counts,
            node_features: Tensor::from_data(
                TensorData::new(node.to_vec(), [b, l, atom_dim]),
                device,
            ),
            pair_features: Tensor::from_data(
                TensorData::new(pair.to_vec(), [b, l, l, bond_dim]),
                device,
            ),
            distances: Tensor::from_data(TensorData::new(dist.to_vec(), [b, l, l]), device),
            atom_mask: Tensor::from_data(TensorData::new(mask.to_vec(), [b, l]), device),
            positions: Tensor::from_data(TensorData::new(positions.to_vec(), [b, l]), device),
            pair_by_row: Tensor::from_data(
                TensorData::new(pair_by_row_host(b, l, pair), [b, l, bond_dim + 1, l]),
                device,
            ),
        }
    }

    /// Molecules in the batch and atoms per molecule after padding: (B, L).
    pub fn dims(&self) -> (usize, usize) {
        let [b, l] = self.atom_mask.dims();
        (b, l)
    }
}

/// Real atoms per molecule of a (B, L) host mask of 1/0 whose rows are of
/// the form 1…1 0…0.
///
/// # Panics
/// If a row has padding before a real atom (the batcher's contract).
pub(crate) fn prefix_counts(mask: &[f32], batch: usize, atoms: usize) -> Vec<usize> {
    (0..batch)
        .map(|j| {
            let row = &mask[j * atoms..(j + 1) * atoms];
            let n = row.iter().take_while(|v| **v > 0.5).count();
            assert!(
                row[n..].iter().all(|v| *v <= 0.5),
                "CoMPT readout: molecule {j} of the batch has padding before a real atom; real atoms must come first"
            );
            n
        })
        .collect()
}

/// One encoder layer: norm shared by the three sub-steps, message attention,
/// one-layer Mish feed-forward.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// The one norm module used three times.
    pub norm: Norm,
    /// Message-passing attention.
    pub attention: MessageAttention,
    /// FFN with N_dense = 1.
    pub feed_forward: Linear,
}

impl EncoderLayer {
    /// `n = norm(H); h1 = n + norm(attn(n)); H' = n + h1 + norm(mish(W h1))`
    /// on the real atoms (N, d).
    pub fn forward(
        &self,
        hidden: Tensor<2>,
        edge_embed: &Linear,
        pair: &PairContext,
        layout: &AtomLayout,
    ) -> Tensor<2> {
        let normed = self.norm.forward(hidden);
        let attended = self
            .attention
            .forward_packed(normed.clone(), edge_embed, pair, layout);
        let h1 = normed.clone() + self.norm.forward(attended);
        let fed = self.norm.forward(mish(super::fused::apply_linear(
            &self.feed_forward,
            h1.clone(),
        )));
        normed + h1 + fed
    }
}

/// One hidden block of the task head: Linear, Mish, norm, dropout.
#[derive(Module, Debug)]
pub struct HeadBlock {
    /// Linear(d→d).
    pub linear: Linear,
    /// Norm of the dataset's kind.
    pub norm: Norm,
    /// Dropout (p = 0 in the paper's runs).
    pub dropout: Dropout,
}

/// The CoMPT backbone with its GRU readout and task head.
#[derive(Module, Debug)]
pub struct Compt {
    /// Linear(atom_dim→d), scaled by √d.
    pub node_embed: Linear,
    /// Learnt position embedding, row 0 for padding.
    pub position_embed: Embedding,
    /// Linear(bond_dim→d), scaled by √d; only its weights enter the scores.
    pub edge_embed: Linear,
    /// Encoder layers.
    pub layers: Vec<EncoderLayer>,
    /// Norm after the last layer.
    pub final_norm: Norm,
    /// GRU readout to one vector per molecule.
    pub readout: GruReadout,
    /// Hidden blocks of the head.
    pub head: Vec<HeadBlock>,
    /// Linear(d→n_tasks).
    pub output: Linear,
    /// Hidden width d.
    pub d_model: usize,
}

impl Compt {
    /// Raw outputs (B, n_tasks): logits for classification, standardised
    /// values for regression.
    ///
    /// # Panics
    /// If a molecule's real atoms do not come first in its rows (the
    /// batcher's layout; see [`GruReadout::forward`]).
    pub fn forward(&self, input: &ComptInput) -> Tensor<2> {
        self.predict(self.embed(input))
    }

    /// Molecule vectors (B, d): the readout of the encoder's output, which
    /// the head turns into predictions.
    pub fn embed(&self, input: &ComptInput) -> Tensor<2> {
        let encoded = self.encode(input);
        self.readout.forward_planned(encoded, &input.readout_plan)
    }

    /// Encoder output (B, L, d) after the final norm; zero rows at padding.
    /// Every per-atom step runs on the real atoms only: padding costs only
    /// in the (L × L) attention scores.
    pub fn encode(&self, input: &ComptInput) -> Tensor<3> {
        let (batch, atoms) = input.dims();
        let layout = &input.layout;
        if layout.real_atoms == 0 {
            let like = &input.node_features;
            return Tensor::zeros([batch, atoms, self.d_model], (&like.device(), like.dtype()));
        }
        let pair = self.pair_context(input);
        let scale = (self.d_model as f64).sqrt();
        let real = layout.real_atoms;
        let positions = layout.unpad_int(input.positions.clone()).reshape([1, real]);
        let mut hidden =
            super::fused::apply_linear(&self.node_embed, layout.unpad(input.node_features.clone()))
                * scale
                + self
                    .position_embed
                    .forward(positions)
                    .reshape([real, self.d_model]);
        for layer in &self.layers {
            hidden = layer.forward(hidden, &self.edge_embed, &pair, layout);
        }
        layout.pad(self.final_norm.forward(hidden))
    }

    /// Head on molecule vectors (B, d).
    pub fn predict(&self, molecules: Tensor<2>) -> Tensor<2> {
        self.head_forward(molecules, true)
    }

    /// The head with dropout applied (where burn's dropout is active: on an
    /// autodiff device) or skipped, for a deterministic loss.
    pub fn head_forward(&self, molecules: Tensor<2>, dropout: bool) -> Tensor<2> {
        let mut x = molecules;
        for block in &self.head {
            x = block
                .norm
                .forward(mish(super::fused::apply_linear(&block.linear, x)));
            if dropout {
                x = block.dropout.forward(x);
            }
        }
        super::fused::apply_linear(&self.output, x)
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }

    /// Matrix-product FLOPs of one training pass on `input`, from its shapes:
    /// B molecules padded to L atoms with N real atoms in all.
    pub fn pass_flops(&self, input: &ComptInput) -> PassFlops {
        let (b, l) = input.dims();
        let n: usize = input.atom_counts.iter().sum();
        let d = self.d_model;
        let [atom_dim, _] = self.node_embed.weight.dims();
        let [bond_dim, _] = self.edge_embed.weight.dims();
        let f = bond_dim + 1;
        let mut flops = PassFlops::default();
        if n == 0 {
            return flops;
        }
        // The atom features are data: only the weight gets a gradient.
        flops.matmul(1, n, atom_dim, d, Grads::Right);
        for layer in &self.layers {
            let h = layer.attention.heads;
            // The folded score map: [√d W_e; √d b_e]·W_k, then W_q and b_q through it.
            flops.matmul(1, f, d, d, Grads::Both);
            flops.matmul(1, d + 1, d, h * f, Grads::Both);
            // Pair queries u = n W_u, then scores u·(e, 1) per (molecule, atom);
            // the bond features are data.
            flops.matmul(1, n, d, h * f, Grads::Both);
            flops.matmul(b * l, h, f, l, Grads::Left);
            // Values, the message sum per (molecule, head), W_o and the FFN.
            flops.matmul(1, n, d, d, Grads::Both);
            flops.matmul(b * h, l, l, d / h, Grads::Both);
            flops.matmul(1, n, d, d, Grads::Both);
            flops.matmul(1, n, d, d, Grads::Both);
        }
        // GRU readout, both directions: input gates, hidden gates (every real
        // atom is one row of one step), the merge; the averaging matrix is data.
        flops.matmul(2, n, d, 3 * d, Grads::Both);
        flops.matmul(2, n, d, 3 * d, Grads::Both);
        flops.matmul(1, n, 2 * d, d, Grads::Both);
        flops.matmul(1, b, n, d, Grads::Right);
        for _ in &self.head {
            flops.matmul(1, b, d, d, Grads::Both);
        }
        let [_, tasks] = self.output.weight.dims();
        flops.matmul(1, b, d, tasks, Grads::Both);
        flops
    }

    /// Tensors shared by every attention layer of one forward pass.
    pub(crate) fn pair_context(&self, input: &ComptInput) -> PairContext {
        let (batch, atoms) = input.dims();
        let device = input.node_features.device();
        let dtype = input.node_features.dtype();
        let column_bias = ((input.atom_mask.clone() - 1.0) * -PAD_BIAS).reshape([batch, 1, atoms]);
        let eye = Tensor::<2>::eye(atoms, &device).cast(dtype);
        PairContext {
            features_by_row: input.pair_by_row.clone(),
            distances: input.distances.clone(),
            column_bias,
            two_minus_eye: eye.neg() + 2.0,
        }
    }
}
