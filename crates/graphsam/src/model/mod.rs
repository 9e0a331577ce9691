//! Model stage: backbones (CoMPT, GROVER, D-MPNN) and their losses.
//!
//! Every backbone implements [`PropertyModel`], which is all the trainer
//! needs: which batch layout it consumes, how a host batch becomes device
//! tensors, its training loss and its predictions. [`ModelSpec`] names a
//! backbone with its hyper-parameters, serialisably, so a saved model can be
//! rebuilt by `graphsam predict`.

pub mod compt;
pub mod dmpnn;
pub mod flops;
pub mod fused;
pub mod graph_input;
pub mod graph_layers;
pub mod grover;
pub mod loss;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use graphsam_chem::features::FeatureSet;

pub use crate::data::TaskType;
use crate::data::{BatchLayout, DenseBatch, PackedBatch};
use compt::{Compt, ComptConfig, ComptInput};
use dmpnn::{Dmpnn, DmpnnConfig};
pub use flops::{Grads, PassFlops};
use graph_input::{GraphInput, HostGraphs};
use grover::{Grover, GroverConfig};

/// Whether a forward pass trains (stochastic parts on) or evaluates.
///
/// Training carries the random generator that drives every stochastic choice
/// of the pass (dropout masks, GROVER's sampled message-passing depths), so a
/// caller that seeds it, or clones it to replay a pass (e.g. the perturbed
/// pass of a SAM step), gets the same network.
pub enum ForwardMode<'a> {
    /// Deterministic evaluation: no dropout, fixed depths.
    Eval,
    /// Training with the given source of randomness.
    Train(&'a mut dyn RngCore),
}

impl ForwardMode<'_> {
    /// A shorter-lived copy of this mode, so one mode can drive several calls.
    pub fn reborrow(&mut self) -> ForwardMode<'_> {
        match self {
            ForwardMode::Eval => ForwardMode::Eval,
            ForwardMode::Train(rng) => ForwardMode::Train(&mut **rng),
        }
    }

    /// True while training.
    pub fn is_training(&self) -> bool {
        matches!(self, ForwardMode::Train(_))
    }
}

/// A molecular property predictor the trainer can fit and evaluate.
pub trait PropertyModel: Module + Sized {
    /// Host batch layout the backbone consumes (dense padded or packed).
    type Batch: BatchLayout;
    /// The batch moved to the device as tensors, built once per step so that
    /// optimizers evaluating several gradients reuse it.
    type Input;

    /// Moves a host batch (features, targets and label mask) to `device`.
    fn input(batch: &Self::Batch, device: &Device) -> anyhow::Result<Self::Input>;

    /// Training loss on a batch with observed-label masking. `step_seed`
    /// fixes any randomness of the forward pass (e.g. GROVER's sampled
    /// message-passing depth), so the evaluations of one optimizer step agree.
    fn loss(&self, input: &Self::Input, task: TaskType, step_seed: u64) -> Tensor<1>;
    /// The training loss with every stochastic part off (no dropout, fixed
    /// depths): a deterministic function of the weights, for measuring
    /// sharpness and loss landscapes.
    fn eval_loss(&self, input: &Self::Input, task: TaskType) -> Tensor<1>;

    /// Predictions (B × T): the log-odds of the positive class for
    /// classification (σ of it is the probability; ranking metrics use the
    /// log-odds themselves, so confident molecules never tie at f32's 1.0),
    /// standardised values for regression. Deterministic (evaluation mode).
    fn predict(&self, input: &Self::Input, task: TaskType) -> Tensor<2>;

    /// The learned molecule representation (B × E) the task head reads:
    /// CoMPT's GRU readout, D-MPNN's mean of atom vectors, GROVER's two
    /// branch readouts side by side. Deterministic (evaluation mode).
    fn embed(&self, input: &Self::Input) -> Tensor<2>;

    /// Matrix-product FLOPs of the training pass [`loss`](Self::loss) runs
    /// on `input` with `step_seed` (forward and backward), from the shapes it runs.
    fn pass_flops(&self, input: &Self::Input, step_seed: u64) -> PassFlops;
}

/// A device batch with its targets and label mask (B × T each).
pub struct Labelled<I> {
    /// The model's own input tensors.
    pub input: I,
    /// Targets (standardised for regression); 0 where missing.
    pub targets: Tensor<2>,
    /// 1 where a label is present.
    pub mask: Tensor<2>,
}

fn labels(
    targets: &[f32],
    mask: &[f32],
    n_tasks: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let b = targets.len() / n_tasks.max(1);
    (
        Tensor::from_data(TensorData::new(targets.to_vec(), [b, n_tasks]), device),
        Tensor::from_data(TensorData::new(mask.to_vec(), [b, n_tasks]), device),
    )
}

/// CoMPT's training loss on head outputs `out`.
fn compt_loss(out: Tensor<2>, input: &Labelled<ComptInput>, task: TaskType) -> Tensor<1> {
    match task {
        TaskType::Classification => {
            loss::masked_bce_with_logits(out, input.targets.clone(), input.mask.clone())
        }
        TaskType::Regression => loss::masked_rmse(out, input.targets.clone(), input.mask.clone()),
    }
}

impl PropertyModel for Compt {
    type Batch = DenseBatch;
    type Input = Labelled<ComptInput>;

    fn input(batch: &DenseBatch, device: &Device) -> anyhow::Result<Self::Input> {
        let input = ComptInput::from_host(
            batch.len(),
            batch.max_atoms,
            &batch.node_features,
            &batch.pair_features,
            &batch.distances,
            &batch.atom_mask,
            &batch.positions,
            device,
        );
        let (targets, mask) = labels(&batch.targets, &batch.target_mask, batch.n_tasks, device);
        Ok(Labelled {
            input,
            targets,
            mask,
        })
    }

    fn loss(&self, input: &Self::Input, task: TaskType, _step_seed: u64) -> Tensor<1> {
        compt_loss(self.forward(&input.input), input, task)
    }

    fn eval_loss(&self, input: &Self::Input, task: TaskType) -> Tensor<1> {
        let out = self.head_forward(self.embed(&input.input), false);
        compt_loss(out, input, task)
    }

    fn predict(&self, input: &Self::Input, task: TaskType) -> Tensor<2> {
        // The head's output is the log-odds (classification) or the
        // standardised value (regression) alike.
        let _ = task;
        self.forward(&input.input)
    }

    fn embed(&self, input: &Self::Input) -> Tensor<2> {
        Compt::embed(self, &input.input)
    }

    fn pass_flops(&self, input: &Self::Input, _step_seed: u64) -> PassFlops {
        Compt::pass_flops(self, &input.input)
    }
}

fn graph_input(batch: &PackedBatch, device: &Device) -> anyhow::Result<Labelled<GraphInput>> {
    let input = GraphInput::from_host(
        &HostGraphs {
            atom_dim: batch.atom_dim,
            bond_dim: batch.bond_dim,
            atom_features: &batch.atom_features,
            bond_features: &batch.bond_features,
            bond_source: &batch.bond_source,
            bond_target: &batch.bond_target,
            bond_reverse: &batch.bond_reverse,
            atom_molecule: &batch.atom_molecule,
            n_molecules: batch.len(),
        },
        device,
    )
    .map_err(|e| anyhow::anyhow!("packing molecules {:?}: {e}", batch.molecules))?;
    let (targets, mask) = labels(&batch.targets, &batch.target_mask, batch.n_tasks, device);
    Ok(Labelled {
        input,
        targets,
        mask,
    })
}

/// GROVER and D-MPNN share a packed input and the same loss/predict entry
/// points; one implementation serves both.
macro_rules! packed_property_model {
    ($model:ty) => {
        impl PropertyModel for $model {
            type Batch = PackedBatch;
            type Input = Labelled<GraphInput>;

            fn input(batch: &PackedBatch, device: &Device) -> anyhow::Result<Self::Input> {
                graph_input(batch, device)
            }

            fn loss(&self, input: &Self::Input, task: TaskType, step_seed: u64) -> Tensor<1> {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(step_seed);
                <$model>::loss(
                    self,
                    &input.input,
                    input.targets.clone(),
                    input.mask.clone(),
                    task,
                    ForwardMode::Train(&mut rng),
                )
            }

            fn eval_loss(&self, input: &Self::Input, task: TaskType) -> Tensor<1> {
                <$model>::loss(
                    self,
                    &input.input,
                    input.targets.clone(),
                    input.mask.clone(),
                    task,
                    ForwardMode::Eval,
                )
            }

            fn predict(&self, input: &Self::Input, task: TaskType) -> Tensor<2> {
                <$model>::predict(self, &input.input, task)
            }

            fn embed(&self, input: &Self::Input) -> Tensor<2> {
                <$model>::embed(self, &input.input)
            }

            fn pass_flops(&self, input: &Self::Input, step_seed: u64) -> PassFlops {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(step_seed);
                <$model>::pass_flops(self, &input.input, ForwardMode::Train(&mut rng))
            }
        }
    };
}

packed_property_model!(Dmpnn);
packed_property_model!(Grover);

/// The backbones, by CLI name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// CoMPT (Chen et al. 2021), the paper's documented backbone.
    Compt,
    /// GROVER's GTransEncoder (Rong et al. 2020), trained from scratch.
    Grover,
    /// chemprop v1's directed message-passing network (Yang et al. 2019).
    Dmpnn,
}

impl ModelKind {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Compt => "compt",
            ModelKind::Grover => "grover",
            ModelKind::Dmpnn => "dmpnn",
        }
    }

    /// The feature set the backbone consumes.
    pub fn feature_set(self) -> FeatureSet {
        match self {
            ModelKind::Compt => FeatureSet::Compt,
            ModelKind::Grover => FeatureSet::Grover,
            ModelKind::Dmpnn => FeatureSet::Chemprop,
        }
    }

    /// The hyper-parameters for `dataset` with `n_tasks` outputs: the
    /// defaults ([`Self::default_spec`]) with the width (`hidden`) and depth
    /// (`layers`) overridden where given, CoMPT's position table grown to hold
    /// molecules below `atom_limit` atoms, and the result checked.
    pub fn spec(
        self,
        dataset: &str,
        n_tasks: usize,
        hidden: Option<usize>,
        layers: Option<usize>,
        atom_limit: Option<usize>,
    ) -> Result<ModelSpec, String> {
        let mut spec = self.default_spec(dataset, n_tasks);
        match &mut spec {
            ModelSpec::Compt(c) => {
                c.d_model = hidden.unwrap_or(c.d_model);
                c.layers = layers.unwrap_or(c.layers);
                // Positions run 1..=atoms, and molecules have fewer than `atom_limit` atoms.
                c.max_atoms = c.max_atoms.max(atom_limit.unwrap_or(0));
            }
            ModelSpec::Grover(c) => {
                c.hidden_size = hidden.unwrap_or(c.hidden_size);
                c.num_mt_block = layers.unwrap_or(c.num_mt_block);
            }
            ModelSpec::Dmpnn(c) => {
                // chemprop sizes the FFN head like the messages unless told otherwise.
                if let Some(d) = hidden {
                    c.hidden_size = d;
                    c.ffn_hidden_size = d;
                }
                c.depth = layers.unwrap_or(c.depth);
            }
        }
        spec.validate()?;
        Ok(spec)
    }

    /// The default hyper-parameters for `dataset` (CoMPT: the per-dataset
    /// table of COMPT.md) with `n_tasks` outputs.
    pub fn default_spec(self, dataset: &str, n_tasks: usize) -> ModelSpec {
        match self {
            ModelKind::Compt => ModelSpec::Compt(ComptConfig::for_dataset(dataset, n_tasks)),
            ModelKind::Grover => ModelSpec::Grover(GroverConfig::new(n_tasks)),
            ModelKind::Dmpnn => ModelSpec::Dmpnn(DmpnnConfig::new(n_tasks)),
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> Result<Self, crate::ParseError> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "compt" => Ok(ModelKind::Compt),
            "grover" => Ok(ModelKind::Grover),
            "dmpnn" | "d-mpnn" | "chemprop" => Ok(ModelKind::Dmpnn),
            _ => Err(crate::ParseError::new(
                "unknown model",
                s,
                "compt, grover or dmpnn",
            )),
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A backbone with its hyper-parameters; enough to rebuild the network.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "kebab-case")]
pub enum ModelSpec {
    /// CoMPT.
    Compt(ComptConfig),
    /// GROVER.
    Grover(GroverConfig),
    /// D-MPNN.
    Dmpnn(DmpnnConfig),
}

impl PartialEq for ModelSpec {
    fn eq(&self, other: &Self) -> bool {
        // GROVER/D-MPNN configs are burn `Config`s without PartialEq;
        // their serialised forms are equal exactly when the settings are.
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

impl ModelSpec {
    /// Why this configuration cannot build a network, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ModelSpec::Compt(c) => c.validate(),
            ModelSpec::Grover(c) => c.validate(),
            ModelSpec::Dmpnn(c) => c.validate(),
        }
    }

    /// The (atom, bond) feature widths the network takes.
    pub fn input_dims(&self) -> (usize, usize) {
        match self {
            ModelSpec::Compt(c) => (c.atom_dim, c.bond_dim),
            ModelSpec::Grover(c) => (c.atom_dim, c.bond_dim),
            ModelSpec::Dmpnn(c) => (c.atom_dim, c.bond_dim),
        }
    }

    /// Number of outputs (tasks).
    pub fn n_tasks(&self) -> usize {
        match self {
            ModelSpec::Compt(c) => c.n_tasks,
            ModelSpec::Grover(c) => c.n_tasks,
            ModelSpec::Dmpnn(c) => c.n_tasks,
        }
    }

    /// Which backbone.
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelSpec::Compt(_) => ModelKind::Compt,
            ModelSpec::Grover(_) => ModelKind::Grover,
            ModelSpec::Dmpnn(_) => ModelKind::Dmpnn,
        }
    }

    /// The CLI name of the backbone.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The feature set the backbone consumes.
    pub fn feature_set(&self) -> FeatureSet {
        self.kind().feature_set()
    }
}

/// Runs `$body` with `$model` bound to a freshly initialised network of the
/// spec's backbone (each arm has its own concrete type), on `$device`, with
/// weights drawn from `$seed`.
#[macro_export]
macro_rules! with_model {
    ($spec:expr, $device:expr, $seed:expr, |$model:ident| $body:expr) => {
        match $spec {
            $crate::model::ModelSpec::Compt(config) => {
                // CoMPT draws its weights from the backend's generator.
                $device.seed($seed);
                let $model = config.init($device);
                $body
            }
            $crate::model::ModelSpec::Grover(config) => {
                let $model = config.init($device, $seed);
                $body
            }
            $crate::model::ModelSpec::Dmpnn(config) => {
                let $model = config.init($device, $seed);
                $body
            }
        }
    };
}
