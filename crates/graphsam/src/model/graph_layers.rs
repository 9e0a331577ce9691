//! Building blocks shared by the packed-graph backbones (GROVER, D-MPNN):
//! seeded parameter initialisation, dropout driven by the caller's generator,
//! scatter-sums over index tensors, the mean readout and the FFN task head.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ForwardMode;
use super::flops::{Grads, PassFlops};
use super::fused;
use super::graph_input::GraphInput;

/// One draw of a standard normal (Box–Muller), from any generator.
pub(crate) fn standard_normal(rng: &mut dyn RngCore) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Creates parameters from one seeded generator on the host, so a model's
/// initial weights depend only on its configuration and seed (not on the
/// backend's global generator, which concurrent threads share).
///
/// Matrices get xavier-normal values (std = √(2 / (fan_in + fan_out)), as
/// PyTorch's `xavier_normal_`), biases zero.
pub(crate) struct ParamInit<'d> {
    rng: ChaCha8Rng,
    device: &'d Device,
    /// GROVER's faithful rule: every one-dimensional parameter (LayerNorm γ
    /// included) starts at zero.
    zero_vectors: bool,
}

impl<'d> ParamInit<'d> {
    /// A generator for `seed`; `zero_vectors` sets LayerNorm γ to 0 instead of 1.
    pub(crate) fn new(device: &'d Device, seed: u64, zero_vectors: bool) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            zero_vectors,
        }
    }

    fn xavier(&mut self, count: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
        let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
        (0..count)
            .map(|_| (standard_normal(&mut self.rng) * std) as f32)
            .collect()
    }

    /// A `d_in → d_out` linear layer (weights stored `d_in × d_out`).
    pub(crate) fn linear(&mut self, d_in: usize, d_out: usize, bias: bool) -> Linear {
        let weight = self.xavier(d_in * d_out, d_in, d_out);
        Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(weight, [d_in, d_out]),
                self.device,
            )),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([d_out], self.device))),
        }
    }

    /// `count` independent `d × d` matrices stacked into one `count × d × d`
    /// parameter, each xavier-normal as if it were its own layer.
    pub(crate) fn square_stack(&mut self, count: usize, d: usize) -> Param<Tensor<3>> {
        let values = self.xavier(count * d * d, d, d);
        Param::from_tensor(Tensor::from_data(
            TensorData::new(values, [count, d, d]),
            self.device,
        ))
    }

    /// LayerNorm over `d` features (eps 1e-5, affine): γ = 1 and β = 0, or
    /// γ = 0 under the faithful GROVER rule.
    pub(crate) fn layer_norm(&mut self, d: usize) -> LayerNorm {
        let mut norm = LayerNormConfig::new(d).init(self.device);
        if self.zero_vectors {
            norm.gamma = Param::from_tensor(Tensor::zeros([d], self.device));
        }
        norm
    }
}

/// Inverted dropout with probability `p` while training; identity otherwise.
/// The mask comes from the mode's generator, so a seeded pass is repeatable.
pub(crate) fn dropout<const D: usize>(
    x: Tensor<D>,
    p: f64,
    mode: &mut ForwardMode<'_>,
) -> Tensor<D> {
    let ForwardMode::Train(rng) = mode else {
        return x;
    };
    if p <= 0.0 {
        return x;
    }
    let shape = x.shape();
    let keep_scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..shape.num_elements())
        .map(|_| {
            if rng.random::<f64>() < p {
                0.0
            } else {
                keep_scale
            }
        })
        .collect();
    let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &x.device());
    x * mask
}

/// Sums the rows of `values` along `dim` into `n_rows` output rows: output row
/// `r` is the sum of the input rows `i` with `index[i] = r`. Deterministic on
/// CPU (sequential accumulation).
pub(crate) fn scatter_sum<const D: usize>(
    values: Tensor<D>,
    dim: usize,
    index: &Tensor<1, Int>,
    n_rows: usize,
) -> Tensor<D> {
    let mut dims = values.dims();
    dims[dim] = n_rows;
    let zeros = Tensor::<D>::zeros(dims, &values.device());
    if index.dims()[0] == 0 {
        return zeros;
    }
    zeros.select_assign(dim, index.clone(), values, IndexingUpdateOp::Add)
}

/// Per-atom sum of `atom_values` over each atom's neighbours (the source atoms
/// of its incoming bonds); zero for an atom without bonds. `dim` is the atom
/// axis.
pub(crate) fn neighbour_sum<const D: usize>(
    atom_values: Tensor<D>,
    dim: usize,
    input: &GraphInput,
) -> Tensor<D> {
    if input.n_bonds() == 0 {
        return atom_values.zeros_like();
    }
    if fused::supported(&atom_values) {
        return fused::map_rows(atom_values, dim, &input.maps.neighbours);
    }
    let n_atoms = atom_values.dims()[dim];
    let along_bonds = atom_values.select(dim, input.bond_source.clone());
    scatter_sum(along_bonds, dim, &input.bond_target, n_atoms)
}

/// Directed-bond message update shared by chemprop and GROVER's edge view:
/// for bond u→v, the sum of the messages into u minus the message v→u.
/// `dim` is the bond axis; needs at least one bond.
pub(crate) fn bond_messages<const D: usize>(
    bond_values: Tensor<D>,
    dim: usize,
    input: &GraphInput,
) -> Tensor<D> {
    if fused::supported(&bond_values) {
        return fused::map_rows(bond_values, dim, &input.maps.bond_messages);
    }
    let into_atoms = scatter_sum(
        bond_values.clone(),
        dim,
        &input.bond_target,
        input.n_atoms(),
    );
    into_atoms.select(dim, input.bond_source.clone())
        - bond_values.select(dim, input.bond_reverse.clone())
}

/// Per-atom sum of the rows of its incoming directed bonds (`dim` is the
/// bond axis); needs at least one bond.
pub(crate) fn bonds_into_atoms<const D: usize>(
    bond_values: Tensor<D>,
    dim: usize,
    input: &GraphInput,
) -> Tensor<D> {
    if fused::supported(&bond_values) {
        return fused::map_rows(bond_values, dim, &input.maps.bonds_into_atoms);
    }
    scatter_sum(bond_values, dim, &input.bond_target, input.n_atoms())
}

/// Mean of the atom rows of each molecule, `n_molecules × d`; a molecule
/// without atoms reads out as zeros.
pub(crate) fn mean_readout(atom_values: Tensor<2>, input: &GraphInput) -> Tensor<2> {
    if fused::supported(&atom_values) {
        return fused::map_rows(atom_values, 0, &input.maps.atom_mean);
    }
    let sums = scatter_sum(atom_values, 0, &input.atom_molecule, input.n_molecules);
    let counts = input
        .molecule_atom_counts
        .clone()
        .clamp_min(1.0)
        .unsqueeze_dim::<2>(1);
    sums / counts
}

/// The molecule-level FFN of chemprop and GROVER: Drop → Linear → [ReLU →
/// Drop → Linear]… ending in one logit per task.
#[derive(Module, Debug)]
pub struct FfnHead {
    /// The linear layers, first to last (all with bias).
    pub layers: Vec<Linear>,
    /// Dropout probability before every linear layer.
    pub dropout: f64,
}

impl FfnHead {
    /// `n_layers` linear layers `d_in → hidden → … → n_tasks` (one layer maps
    /// `d_in → n_tasks` directly).
    pub(crate) fn new(
        init: &mut ParamInit<'_>,
        d_in: usize,
        hidden: usize,
        n_tasks: usize,
        n_layers: usize,
        dropout: f64,
    ) -> Self {
        let n_layers = n_layers.max(1);
        let layers = (0..n_layers)
            .map(|i| {
                let from = if i == 0 { d_in } else { hidden };
                let to = if i + 1 == n_layers { n_tasks } else { hidden };
                init.linear(from, to, true)
            })
            .collect();
        Self { layers, dropout }
    }

    /// Parameters of a head with these sizes.
    pub fn param_count(d_in: usize, hidden: usize, n_tasks: usize, n_layers: usize) -> usize {
        match n_layers.max(1) {
            1 => d_in * n_tasks + n_tasks,
            l => (d_in + 1) * hidden + (l - 2) * (hidden + 1) * hidden + (hidden + 1) * n_tasks,
        }
    }

    /// Matrix-product FLOPs of a training pass over `rows` molecule vectors.
    pub fn pass_flops(&self, rows: usize) -> PassFlops {
        let mut flops = PassFlops::default();
        for layer in &self.layers {
            let [d_in, d_out] = layer.weight.dims();
            flops.matmul(1, rows, d_in, d_out, Grads::Both);
        }
        flops
    }

    /// Logits, `rows × n_tasks`.
    pub fn forward(&self, x: Tensor<2>, mode: &mut ForwardMode<'_>) -> Tensor<2> {
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                x = relu(x);
            }
            x = fused::apply_linear(layer, dropout(x, self.dropout, mode));
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph_input::fixtures::{MoleculeSketch, featurize_all, pack};

    #[allow(deprecated)]
    fn device() -> Device {
        Device::ndarray()
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn neighbour_sums_and_messages_follow_the_bonds() {
        let d = device();
        // A 3-atom chain 0-1-2 and a lone atom 3.
        let molecules = featurize_all(
            &[MoleculeSketch::chain(3), MoleculeSketch::new(1, &[])],
            1,
            1,
            0,
        );
        let input = pack(&molecules, 1, 1, &d);
        let atoms = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 10.0, 100.0, 1000.0], [4, 1]),
            &d,
        );
        assert_eq!(
            values(neighbour_sum(atoms, 0, &input)),
            vec![10.0, 101.0, 10.0, 0.0]
        );

        // Directed bonds: 0:0→1, 1:1→0, 2:1→2, 3:2→1.
        let bonds =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 4.0, 8.0], [4, 1]), &d);
        // 0→1: into atom 0 = {1→0}=2, minus reverse 1→0 = 2 → 0.
        // 1→0: into atom 1 = {0→1, 2→1} = 1+8, minus 0→1 = 1 → 8.
        // 1→2: 9 - 8 (2→1) = 1. 2→1: into atom 2 = {1→2} = 4, minus 4 → 0.
        assert_eq!(
            values(bond_messages(bonds, 0, &input)),
            vec![0.0, 8.0, 1.0, 0.0]
        );

        let readout = mean_readout(
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 6.0, 5.0], [4, 1]), &d),
            &input,
        );
        assert_eq!(values(readout), vec![3.0, 5.0]);
    }

    #[test]
    fn dropout_is_seeded_and_inverted() {
        let d = device();
        let x = Tensor::<2>::ones([50, 40], &d);
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            values(dropout(x.clone(), 0.25, &mut ForwardMode::Train(&mut rng)))
        };
        let a = run(3);
        assert_eq!(a, run(3));
        assert_ne!(a, run(4));
        let zeros = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        assert!((zeros - 0.25).abs() < 0.03, "dropped fraction {zeros}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        assert_eq!(
            values(dropout(x.clone(), 0.25, &mut ForwardMode::Eval)),
            values(x)
        );
    }

    #[test]
    fn xavier_init_has_the_documented_spread_and_is_seeded() {
        let d = device();
        let w = |seed| {
            values(
                ParamInit::new(&d, seed, false)
                    .linear(200, 100, true)
                    .weight
                    .val(),
            )
        };
        let a = w(1);
        assert_eq!(a, w(1));
        assert_ne!(a, w(2));
        let var = a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(
            (var - 2.0 / 300.0).abs() < 2.0 / 300.0 * 0.05,
            "variance {var}"
        );
        let linear = ParamInit::new(&d, 1, false).linear(3, 2, true);
        assert_eq!(
            linear
                .bias
                .unwrap()
                .val()
                .to_data()
                .try_to_vec::<f32>()
                .unwrap(),
            vec![0.0, 0.0]
        );
        let norm = ParamInit::new(&d, 1, true).layer_norm(4);
        assert_eq!(
            norm.gamma.val().to_data().try_to_vec::<f32>().unwrap(),
            vec![0.0; 4]
        );
        let norm = ParamInit::new(&d, 1, false).layer_norm(4);
        assert_eq!(
            norm.gamma.val().to_data().try_to_vec::<f32>().unwrap(),
            vec![1.0; 4]
        );
    }

    #[test]
    fn ffn_head_param_count_matches_its_layers() {
        let d = device();
        for layers in 1..=3 {
            let head = FfnHead::new(&mut ParamInit::new(&d, 0, false), 7, 5, 3, layers, 0.0);
            assert_eq!(
                head.num_params(),
                FfnHead::param_count(7, 5, 3, layers),
                "{layers} layers"
            );
        }
    }
}

/// Numerical checks shared by the model tests.
#[cfg(test)]
pub(crate) mod checks {
    use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
    use burn::tensor::{Device, Gradients, Tensor, TensorData};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::standard_normal;

    fn direction<const D: usize>(
        rng: &mut ChaCha8Rng,
        like: &Tensor<D>,
        device: &Device,
    ) -> Tensor<D> {
        let shape = like.shape();
        let values: Vec<f32> = (0..shape.num_elements())
            .map(|_| standard_normal(rng) as f32)
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    struct DirectionalGradient<'g> {
        grads: &'g Gradients,
        rng: ChaCha8Rng,
        total: f64,
    }

    impl ModuleVisitor for DirectionalGradient<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            // Draw the direction even without a gradient, to stay in step
            // with the mapper below.
            let v = direction(&mut self.rng, &value, &value.device());
            if let Some(grad) = value.grad(self.grads) {
                let v = v.to_device(&grad.device());
                self.total += (grad * v).sum().into_data().try_to_vec::<f32>().unwrap()[0] as f64;
            }
        }
    }

    struct Shift {
        rng: ChaCha8Rng,
        step: f64,
    }

    impl ModuleMapper for Shift {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let rng = &mut self.rng;
            let step = self.step;
            param.map(|t| {
                let v = direction(rng, &t, &t.device());
                t + v * step
            })
        }
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_data().try_to_vec::<f32>().unwrap()[0] as f64
    }

    /// The derivative of `loss` along a random direction over every
    /// parameter: (autodiff, central finite difference with step `eps`).
    /// `model` must live on an autodiff device.
    pub(crate) fn directional_derivative<M: Module + Clone>(
        model: &M,
        loss: impl Fn(&M) -> Tensor<1>,
        seed: u64,
        eps: f64,
    ) -> (f64, f64) {
        let grads = loss(model).backward();
        let mut visitor = DirectionalGradient {
            grads: &grads,
            rng: ChaCha8Rng::seed_from_u64(seed),
            total: 0.0,
        };
        model.visit(&mut visitor);
        let shifted = |step| {
            let moved = model.clone().map(&mut Shift {
                rng: ChaCha8Rng::seed_from_u64(seed),
                step,
            });
            scalar(loss(&moved))
        };
        let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
        (visitor.total, numeric)
    }
}

/// The packed-graph backbones on flex (fused row maps) against ndarray
/// (composite gathers and scatters): same seeded weights, same batch.
#[cfg(test)]
mod fused_against_composite {
    use burn::module::Module;
    use burn::optim::GradientsParams;
    use burn::tensor::Device;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use crate::model::dmpnn::DmpnnConfig;
    use crate::model::graph_input::fixtures::{featurize_all, matrix, pack, sketches};
    use crate::model::grover::GroverConfig;
    use crate::model::{ForwardMode, TaskType};

    /// Equal to 2e-5 of the larger of `want`'s own scale and `floor`
    /// (gradients that are zero in exact arithmetic are rounding noise).
    fn close(name: &str, got: &[f32], want: &[f32], floor: f32) {
        assert_eq!(got.len(), want.len(), "{name}");
        let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 2e-5 * scale,
                "{name}[{i}]: flex {g} vs ndarray {w}"
            );
        }
    }

    /// Loss and every parameter's gradient, flattened in visiting order.
    fn loss_and_grads<M: Module>(model: &M, loss: burn::Tensor<1>) -> (f32, Vec<Vec<f32>>) {
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), model);
        struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
        impl burn::module::ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(
                &mut self,
                param: &burn::module::Param<burn::Tensor<D>>,
            ) {
                if let Some(g) = self.0.get::<D>(param.id) {
                    self.1
                        .push(g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
                }
            }
        }
        let mut collect = Collect(&grads, Vec::new());
        model.visit(&mut collect);
        (value, collect.1)
    }

    #[allow(deprecated)]
    fn devices() -> [Device; 2] {
        [Device::flex().autodiff(), Device::ndarray().autodiff()]
    }

    #[test]
    fn dmpnn_and_grover_give_the_same_loss_and_gradients_on_both_cpu_backends() {
        let molecules = featurize_all(&sketches(), 6, 3, 5);
        let mut results = Vec::new();
        for device in devices() {
            let input = pack(&molecules, 6, 3, &device);
            let targets = matrix(vec![1., 0., 0., 1., 1., 1., 0., 0.], 4, &device);
            let mask = matrix(vec![1., 1., 1., 0., 1., 1., 1., 1.], 4, &device);
            let dmpnn = DmpnnConfig::tiny(2).init(&device, 3);
            let loss = dmpnn.loss(
                &input,
                targets.clone(),
                mask.clone(),
                TaskType::Classification,
                ForwardMode::Eval,
            );
            let d = loss_and_grads(&dmpnn, loss);
            let grover = GroverConfig::tiny(2).init(&device, 4);
            let mut rng = ChaCha8Rng::seed_from_u64(8);
            let loss = grover.loss(
                &input,
                targets,
                mask,
                TaskType::Regression,
                ForwardMode::Train(&mut rng),
            );
            let g = loss_and_grads(&grover, loss);
            results.push((d, g));
        }
        let [(flex_d, flex_g), (nd_d, nd_g)] = [results.remove(0), results.remove(0)];
        for (name, flex, nd) in [("dmpnn", flex_d, nd_d), ("grover", flex_g, nd_g)] {
            close(&format!("{name} loss"), &[flex.0], &[nd.0], 1e-6);
            assert_eq!(flex.1.len(), nd.1.len(), "{name}: parameter count");
            assert!(flex.1.len() > 4, "{name}: gradients collected");
            let largest = nd.1.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (f, n)) in flex.1.iter().zip(&nd.1).enumerate() {
                close(
                    &format!("{name} gradient of parameter {i}"),
                    f,
                    n,
                    1e-3 * largest,
                );
            }
        }
    }
}
