//! Directed message-passing neural network (D-MPNN), with the semantics of
//! chemprop v1 (Yang et al., "Analyzing Learned Molecular Representations
//! for Property Prediction", J. Chem. Inf. Model. 2019): the small, fast
//! baseline most users compare graph transformers against.
//!
//! For directed bond u→v with input x_uv = [atom u ‖ bond uv]:
//! h⁰ = ReLU(W_i x), then `depth − 1` times
//! h ← ReLU(W_i x + W_h (Σ_{k→u} h_ku − h_vu)); atoms read out
//! ReLU(W_o [atom ‖ Σ_{k→v} h_kv]), molecules average their atoms, and an FFN
//! maps the molecule vector to one logit per task.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::flops::{Grads, PassFlops};
use super::fused;
use super::graph_input::GraphInput;
use super::graph_layers::{
    FfnHead, ParamInit, bond_messages, bonds_into_atoms, dropout, mean_readout,
};
use super::loss::{masked_bce_with_logits, masked_mse};
use super::{ForwardMode, TaskType};

/// Sizes of a D-MPNN; the defaults are chemprop v1's.
#[derive(Config, Debug)]
pub struct DmpnnConfig {
    /// Number of prediction tasks (logits per molecule).
    pub n_tasks: usize,
    /// Atom feature width (chemprop: 133, from graphsam-chem).
    #[config(default = "crate::features::FeatureSet::Chemprop.atom_dim()")]
    pub atom_dim: usize,
    /// Bond feature width (chemprop: 14, from graphsam-chem).
    #[config(default = "crate::features::FeatureSet::Chemprop.bond_dim()")]
    pub bond_dim: usize,
    /// Width of bond messages and atom vectors.
    #[config(default = 300)]
    pub hidden_size: usize,
    /// Message-passing depth: `depth − 1` message updates after the input layer.
    #[config(default = 3)]
    pub depth: usize,
    /// Dropout probability (messages, atom vectors, FFN inputs).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Linear layers in the FFN head.
    #[config(default = 2)]
    pub ffn_num_layers: usize,
    /// Hidden width of the FFN head (chemprop: equal to `hidden_size`).
    #[config(default = 300)]
    pub ffn_hidden_size: usize,
    /// Bias on W_i and W_h (chemprop: off; W_o and the FFN always have one).
    #[config(default = false)]
    pub bias: bool,
}

impl DmpnnConfig {
    /// A very small network for tests.
    pub fn tiny(n_tasks: usize) -> Self {
        Self::new(n_tasks)
            .with_atom_dim(6)
            .with_bond_dim(3)
            .with_hidden_size(8)
            .with_ffn_hidden_size(5)
    }

    /// Why this configuration cannot build a useful network, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_size == 0 {
            return Err("D-MPNN config: hidden_size must be positive".into());
        }
        if self.depth == 0 {
            return Err(
                "D-MPNN config: depth must be at least 1 (one message-passing step)".into(),
            );
        }
        Ok(())
    }

    /// Builds the network with weights drawn from `seed` (xavier-normal
    /// matrices, zero biases, as chemprop's `initialize_weights`).
    pub fn init(&self, device: &Device, seed: u64) -> Dmpnn {
        let mut init = ParamInit::new(device, seed, false);
        let (a, b, d) = (self.atom_dim, self.bond_dim, self.hidden_size);
        Dmpnn {
            w_input: init.linear(a + b, d, self.bias),
            w_hidden: init.linear(d, d, self.bias),
            w_output: init.linear(a + d, d, true),
            head: FfnHead::new(
                &mut init,
                d,
                self.ffn_hidden_size,
                self.n_tasks,
                self.ffn_num_layers,
                self.dropout,
            ),
            atom_dim: a,
            bond_dim: b,
            depth: self.depth,
            dropout: self.dropout,
        }
    }

    /// Trainable parameters of [`init`](Self::init)'s network, in closed form.
    pub fn param_count(&self) -> usize {
        let (a, b, d) = (self.atom_dim, self.bond_dim, self.hidden_size);
        let bias = usize::from(self.bias);
        (a + b) * d
            + bias * d
            + d * d
            + bias * d
            + (a + d) * d
            + d
            + FfnHead::param_count(d, self.ffn_hidden_size, self.n_tasks, self.ffn_num_layers)
    }
}

/// A chemprop v1 D-MPNN with its FFN head.
#[derive(Module, Debug)]
pub struct Dmpnn {
    /// W_i: [source atom ‖ bond] → hidden.
    pub w_input: Linear,
    /// W_h: message update, hidden → hidden.
    pub w_hidden: Linear,
    /// W_o: [atom ‖ incoming messages] → atom vector.
    pub w_output: Linear,
    /// Molecule vector → one logit per task.
    pub head: FfnHead,
    atom_dim: usize,
    bond_dim: usize,
    depth: usize,
    dropout: f64,
}

impl Dmpnn {
    /// Molecule vectors (mean of atom vectors), `n_molecules × hidden`.
    ///
    /// # Panics
    /// If the input's feature widths differ from the configuration's (a
    /// featurizer/model mismatch in the program, not a data error).
    pub fn encode(&self, input: &GraphInput, mode: &mut ForwardMode<'_>) -> Tensor<2> {
        assert_eq!(
            (input.atom_dim(), input.bond_dim()),
            (self.atom_dim, self.bond_dim),
            "D-MPNN built for atom/bond widths {}/{} got a batch with {}/{}",
            self.atom_dim,
            self.bond_dim,
            input.atom_dim(),
            input.bond_dim()
        );
        let hidden = self.w_hidden.weight.dims()[0];
        let incoming = if input.n_bonds() == 0 {
            Tensor::zeros([input.n_atoms(), hidden], &input.atom_features.device())
        } else {
            let bond_input = self.bond_input(input);
            let mut message = relu(bond_input.clone());
            for _ in 1..self.depth {
                let incoming = bond_messages(message, 0, input);
                let updated = match &self.w_hidden.bias {
                    // One fused pass for relu(W_h m + h_in) (chemprop's W_h has no bias).
                    None => fused::linear_add_relu(
                        incoming,
                        self.w_hidden.weight.val(),
                        bond_input.clone(),
                    ),
                    Some(_) => {
                        relu(bond_input.clone() + fused::apply_linear(&self.w_hidden, incoming))
                    }
                };
                message = dropout(updated, self.dropout, mode);
            }
            bonds_into_atoms(message, 0, input)
        };
        let atoms = self.atom_output(input, incoming);
        let atoms = dropout(relu(atoms), self.dropout, mode);
        mean_readout(atoms, input)
    }

    /// Whether this pass splits W_i and W_o by input block (the fused CPU
    /// path): x_uv W_i = atom_u W_ia + bond_uv W_ib, with atom_u W_ia computed
    /// once per atom and gathered to its bonds, and [atom ‖ m] W_o =
    /// atom W_oa + m W_om, so no gradient is computed for the feature blocks.
    fn splits_inputs(&self, input: &GraphInput) -> bool {
        fused::supported(&input.atom_features) && self.w_input.bias.is_none()
    }

    /// h⁰ before its ReLU: W_i [atom_u ‖ bond_uv] per directed bond.
    fn bond_input(&self, input: &GraphInput) -> Tensor<2> {
        if !self.splits_inputs(input) {
            return fused::apply_linear(&self.w_input, input.source_atom_and_bond_features());
        }
        let weight = self.w_input.weight.val();
        let atom_part =
            input
                .atom_features
                .clone()
                .matmul(weight.clone().narrow(0, 0, self.atom_dim));
        let bond_part =
            input
                .bond_features
                .clone()
                .matmul(weight.narrow(0, self.atom_dim, self.bond_dim));
        fused::map_rows(atom_part, 0, &input.maps.source_atoms) + bond_part
    }

    /// W_o [atom ‖ incoming messages] + b per atom (before its ReLU).
    fn atom_output(&self, input: &GraphInput, incoming: Tensor<2>) -> Tensor<2> {
        let bias = self.w_output.bias.as_ref().map(|b| b.val());
        match bias.filter(|_| self.splits_inputs(input)) {
            Some(bias) => {
                let weight = self.w_output.weight.val();
                let hidden = weight.dims()[1];
                let atom_part =
                    input
                        .atom_features
                        .clone()
                        .matmul(weight.clone().narrow(0, 0, self.atom_dim));
                fused::linear_tensors(incoming, weight.narrow(0, self.atom_dim, hidden), bias)
                    + atom_part
            }
            None => fused::apply_linear(
                &self.w_output,
                Tensor::cat(vec![input.atom_features.clone(), incoming], 1),
            ),
        }
    }

    /// Matrix-product FLOPs of one training pass on `input`, from its shapes
    /// (the mode does not change them: D-MPNN has a fixed depth).
    pub fn pass_flops(&self, input: &GraphInput, _mode: ForwardMode<'_>) -> PassFlops {
        let (atoms, bonds) = (input.n_atoms(), input.n_bonds());
        let [input_width, hidden] = self.w_input.weight.dims();
        let [output_width, _] = self.w_output.weight.dims();
        let mut flops = PassFlops::default();
        let split = self.splits_inputs(input);
        if bonds > 0 {
            // [source atom ‖ bond] features are data.
            if split {
                flops.matmul(1, atoms, self.atom_dim, hidden, Grads::Right);
                flops.matmul(1, bonds, self.bond_dim, hidden, Grads::Right);
            } else {
                flops.matmul(1, bonds, input_width, hidden, Grads::Right);
            }
            for _ in 1..self.depth {
                flops.matmul(1, bonds, hidden, hidden, Grads::Both);
            }
        }
        if split && self.w_output.bias.is_some() {
            flops.matmul(1, atoms, self.atom_dim, hidden, Grads::Right);
            flops.matmul(1, atoms, output_width - self.atom_dim, hidden, Grads::Both);
        } else {
            flops.matmul(1, atoms, output_width, hidden, Grads::Both);
        }
        flops += self.head.pass_flops(input.n_molecules);
        flops
    }

    /// Logits, `n_molecules × n_tasks`.
    pub fn forward(&self, input: &GraphInput, mut mode: ForwardMode<'_>) -> Tensor<2> {
        let molecules = self.encode(input, &mut mode);
        self.head.forward(molecules, &mut mode)
    }

    /// Training loss: BCE on logits (classification) or MSE on standardised
    /// targets (regression), averaged over observed labels (`mask` = 1).
    pub fn loss(
        &self,
        input: &GraphInput,
        targets: Tensor<2>,
        mask: Tensor<2>,
        task: TaskType,
        mode: ForwardMode<'_>,
    ) -> Tensor<1> {
        let logits = self.forward(input, mode);
        let targets = targets.mask_fill(mask.clone().equal_elem(0.0), 0.0);
        match task {
            TaskType::Classification => masked_bce_with_logits(logits, targets, mask),
            TaskType::Regression => masked_mse(logits, targets, mask),
        }
    }

    /// Evaluation output, `n_molecules × n_tasks`: log-odds (classification)
    /// or standardised values (regression); both are the head's output, so
    /// `_task` only keeps the signature GROVER's `predict` has.
    pub fn predict(&self, input: &GraphInput, _task: TaskType) -> Tensor<2> {
        self.forward(input, ForwardMode::Eval)
    }

    /// Molecule vectors (`n_molecules × hidden`) in evaluation mode: what
    /// the FFN head reads.
    pub fn embed(&self, input: &GraphInput) -> Tensor<2> {
        self.encode(input, &mut ForwardMode::Eval)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, Param};
    use burn::optim::{AdamConfig, GradientsParams};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::model::graph_input::HostGraphs;
    use crate::model::graph_input::fixtures::{
        MoleculeSketch, device, featurize_all, host, matrix, pack, scalar, sketches,
    };
    use crate::model::graph_layers::checks::directional_derivative;

    #[test]
    fn predicts_every_molecule_and_masks_missing_labels() {
        let d = device();
        let config = DmpnnConfig::tiny(2);
        let model = config.init(&d, 7);
        let molecules = featurize_all(&sketches(), 6, 3, 1);
        let input = pack(&molecules, 6, 3, &d);
        let logits = model.forward(&input, ForwardMode::Eval);
        assert_eq!(logits.dims(), [4, 2]);
        assert!(host(logits.clone()).iter().all(|v| v.is_finite()));
        // Log-odds for classification, standardised values for regression: the head's output.
        assert_eq!(
            host(model.predict(&input, TaskType::Classification)),
            host(logits.clone())
        );
        assert_eq!(
            host(model.predict(&input, TaskType::Regression)),
            host(logits)
        );

        let mask = matrix(vec![1., 0., 1., 1., 0., 1., 1., 0.], 4, &d);
        let targets = matrix(vec![1., 0., 0., 1., 1., 1., 0., 0.], 4, &d);
        // Missing labels may hold anything, NaN included: the loss ignores them.
        let scrambled = matrix(vec![1., f32::NAN, 0., 1., 7., 1., 0., -3.], 4, &d);
        for task in [TaskType::Classification, TaskType::Regression] {
            let loss = scalar(model.loss(
                &input,
                targets.clone(),
                mask.clone(),
                task,
                ForwardMode::Eval,
            ));
            let same = scalar(model.loss(
                &input,
                scrambled.clone(),
                mask.clone(),
                task,
                ForwardMode::Eval,
            ));
            assert!(loss.is_finite() && loss > 0.0);
            assert_eq!(loss, same, "{task:?}");
        }
        let none = scalar(model.loss(
            &input,
            targets,
            mask.zeros_like(),
            TaskType::Regression,
            ForwardMode::Eval,
        ));
        assert_eq!(none, 0.0);
    }

    #[test]
    fn regression_loss_is_the_masked_mean_squared_error() {
        let d = device();
        let model = DmpnnConfig::tiny(1).init(&d, 3);
        let input = pack(&featurize_all(&sketches(), 6, 3, 2), 6, 3, &d);
        let p = host(model.forward(&input, ForwardMode::Eval));
        let y = [0.5f32, -1.0, 2.0, 0.0];
        let m = [1.0f32, 1.0, 0.0, 1.0];
        let expected: f32 = (0..4).map(|i| m[i] * (p[i] - y[i]).powi(2)).sum::<f32>() / 3.0;
        let loss = scalar(model.loss(
            &input,
            matrix(y.to_vec(), 4, &d),
            matrix(m.to_vec(), 4, &d),
            TaskType::Regression,
            ForwardMode::Eval,
        ));
        assert!(
            (loss - expected).abs() < 1e-6 * expected.max(1.0),
            "{loss} vs {expected}"
        );
    }

    #[test]
    fn a_molecule_predicts_the_same_alone_and_in_any_batch() {
        let d = device();
        let model = DmpnnConfig::tiny(2).init(&d, 11);
        let molecules = featurize_all(&sketches(), 6, 3, 5);
        let together = host(model.forward(&pack(&molecules, 6, 3, &d), ForwardMode::Eval));
        for (i, molecule) in molecules.iter().enumerate() {
            // Alone (the lone atom makes a batch with no bond at all).
            let alone = host(model.forward(
                &pack(std::slice::from_ref(molecule), 6, 3, &d),
                ForwardMode::Eval,
            ));
            for t in 0..2 {
                assert!(
                    (alone[t] - together[2 * i + t]).abs() < 1e-5,
                    "molecule {i}"
                );
            }
        }
        // Reordering the batch permutes the rows.
        let reversed: Vec<_> = molecules.iter().rev().cloned().collect();
        let backwards = host(model.forward(&pack(&reversed, 6, 3, &d), ForwardMode::Eval));
        for i in 0..4 {
            for t in 0..2 {
                assert!((backwards[2 * (3 - i) + t] - together[2 * i + t]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn message_passing_matches_a_hand_computed_network() {
        // Width-1 network on the chain 0-1-2 with W_i = W_h = 1, W_o = [1, 1]
        // (atom feature, message sum), checked through `encode` (before the head).
        let d = device();
        let config = DmpnnConfig::new(1)
            .with_atom_dim(1)
            .with_bond_dim(1)
            .with_hidden_size(1)
            .with_ffn_num_layers(1)
            .with_depth(3);
        let mut model = config.init(&d, 0);
        let one = |rows: usize| Param::from_tensor(Tensor::<2>::ones([rows, 1], &d));
        model.w_input.weight = one(2);
        model.w_hidden.weight = one(1);
        model.w_output.weight = one(2);
        model.w_output.bias = Some(Param::from_tensor(Tensor::zeros([1], &d)));
        let input = GraphInput::from_host(
            &HostGraphs {
                atom_dim: 1,
                bond_dim: 1,
                atom_features: &[1.0, 2.0, 3.0],
                bond_features: &[0.5, 0.5, 0.25, 0.25],
                bond_source: &[0, 1, 1, 2],
                bond_target: &[1, 0, 2, 1],
                bond_reverse: &[1, 0, 3, 2],
                atom_molecule: &[0, 0, 0],
                n_molecules: 1,
            },
            &d,
        )
        .unwrap();
        // x (source atom + bond) = [1.5, 2.5, 2.25, 3.25] for 0→1, 1→0, 1→2, 2→1; h⁰ = x.
        // Step 1: sums into atoms: in(0) = 2.5, in(1) = 1.5 + 3.25, in(2) = 2.25;
        //   m = [in(0) − h(1→0), in(1) − h(0→1), in(1) − h(2→1), in(2) − h(1→2)] = [0, 3.25, 1.5, 0]
        //   h¹ = x + m = [1.5, 5.75, 3.75, 3.25]
        // Step 2: in = [5.75, 4.75, 3.75]; m = [0, 3.25, 1.5, 0]; h² = h¹.
        // Atoms: ReLU(atom + in) = [1 + 5.75, 2 + 4.75, 3 + 3.75] = 6.75 each; mean 6.75.
        let encoded = host(model.encode(&input, &mut ForwardMode::Eval));
        assert_eq!(encoded, vec![6.75]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let d = device().autodiff();
        let model = DmpnnConfig::tiny(2).with_depth(3).init(&d, 5);
        let input = pack(&featurize_all(&sketches(), 6, 3, 8), 6, 3, &d);
        let targets = matrix(vec![1., 0., 0., 1., 1., 1., 0., 0.], 4, &d);
        let mask = matrix(vec![1., 0., 1., 1., 1., 1., 1., 1.], 4, &d);
        // Step 3e-4: larger steps are biased by curvature and ReLU kinks
        // (1e-2 is off by 16%), smaller ones by f32 rounding.
        for (task, seed) in [(TaskType::Classification, 1), (TaskType::Regression, 2)] {
            let (analytic, numeric) = directional_derivative(
                &model,
                |m: &Dmpnn| {
                    m.loss(
                        &input,
                        targets.clone(),
                        mask.clone(),
                        task,
                        ForwardMode::Eval,
                    )
                },
                seed,
                3e-4,
            );
            let error = (analytic - numeric).abs() / analytic.abs().max(1e-3);
            assert!(
                error < 1e-2,
                "{task:?}: autodiff {analytic} vs finite difference {numeric}"
            );
        }
    }

    #[test]
    fn default_size_matches_chemprop() {
        let d = device();
        let config = DmpnnConfig::new(1);
        // W_i 147·300 + W_h 300·300 + W_o (433·300 + 300) + FFN (300·300 + 300) + (300 + 1).
        assert_eq!(config.param_count(), 354_901);
        assert_eq!(config.init(&d, 0).num_params(), 354_901);
        for config in [
            DmpnnConfig::tiny(3),
            DmpnnConfig::tiny(1).with_bias(true).with_ffn_num_layers(3),
        ] {
            assert_eq!(config.init(&d, 0).num_params(), config.param_count());
        }
    }

    #[test]
    fn adam_reduces_the_loss_on_a_small_fixture() {
        let d = device().autodiff();
        let mut model = DmpnnConfig::tiny(2).with_dropout(0.1).init(&d, 1);
        let mut sketches = sketches();
        sketches.extend([
            MoleculeSketch::ring(5),
            MoleculeSketch::chain(7),
            MoleculeSketch::ring(3),
        ]);
        let input = pack(&featurize_all(&sketches, 6, 3, 3), 6, 3, &d);
        let targets = matrix(
            vec![1., 0., 0., 1., 1., 1., 0., 0., 1., 1., 0., 1., 1., 0.],
            7,
            &d,
        );
        let mask = matrix(
            vec![1., 1., 1., 0., 1., 1., 1., 1., 0., 1., 1., 1., 1., 1.],
            7,
            &d,
        );
        let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let eval_loss = |m: &Dmpnn| {
            scalar(m.loss(
                &input,
                targets.clone(),
                mask.clone(),
                TaskType::Classification,
                ForwardMode::Eval,
            ))
        };
        let before = eval_loss(&model);
        for _ in 0..60 {
            let loss = model.loss(
                &input,
                targets.clone(),
                mask.clone(),
                TaskType::Classification,
                ForwardMode::Train(&mut rng),
            );
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-2, model, grads);
        }
        let after = eval_loss(&model);
        assert!(after < 0.5 * before, "loss {before} -> {after}");
    }
}
