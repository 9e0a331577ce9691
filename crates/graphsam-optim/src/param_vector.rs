//! Vectors in parameter space: one tensor per model parameter, kept flat.
//!
//! Gradients, perturbations and the GraphSAM estimates g_h and g_s are all
//! "one tensor per parameter". Keeping each as a flat rank-1 tensor makes them
//! independent of the parameter's rank (burn's tensors carry the rank as a
//! const generic), while the module visit order keeps every reduction in one
//! deterministic order so that resumed runs reproduce bit for bit.
//!
//! All tensors live on the device of the gradient they came from, without
//! autodiff; nothing here copies a tensor to the host. The only host reads are
//! scalar norms, requested explicitly by the caller.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

/// Added to every norm in a denominator so that a zero vector never divides by zero.
pub const NORM_EPSILON: f64 = 1e-12;

/// One parameter's share of a [`ParamVector`].
#[derive(Clone, Debug)]
pub(crate) struct ParamSlot {
    /// Which parameter this slot belongs to (ids survive `Module::map`).
    pub id: ParamId,
    /// The parameter's shape, to reshape the flat tensor back.
    pub shape: Vec<usize>,
    /// The values, flattened, on the parameter's device, without autodiff.
    pub flat: Tensor<1>,
}

/// A vector in parameter space: one flat tensor per parameter, in module order.
#[derive(Clone, Debug, Default)]
pub struct ParamVector {
    slots: Vec<ParamSlot>,
    index: HashMap<ParamId, usize>,
}

impl ParamVector {
    fn push(&mut self, slot: ParamSlot) {
        self.index.insert(slot.id, self.slots.len());
        self.slots.push(slot);
    }

    /// The gradients of `model`'s float parameters found in `grads`, in module order.
    ///
    /// Parameters without a gradient (frozen, or unused by the loss) are absent,
    /// which every operation treats as a zero entry.
    pub fn from_gradients<M: Module>(model: &M, grads: &mut GradientsParams) -> Self {
        struct Collect<'a> {
            grads: &'a mut GradientsParams,
            out: ParamVector,
        }
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(grad) = self.grads.remove::<D>(param.id) {
                    let shape = grad.dims().to_vec();
                    let flat = grad.inner().reshape([-1]);
                    self.out.push(ParamSlot {
                        id: param.id,
                        shape,
                        flat,
                    });
                }
            }
        }
        let mut visitor = Collect {
            grads,
            out: ParamVector::default(),
        };
        model.visit(&mut visitor);
        visitor.out
    }

    /// |w| for every parameter of `model` that has a slot in `like` (ASAM's T).
    pub fn abs_weights<M: Module>(model: &M, like: &ParamVector) -> Self {
        // The weights share the parameters' buffers, so abs allocates once
        // per slot either way.
        Self::weights_like(model, like).map_slots(Tensor::abs)
    }

    /// Burn gradients for the base optimizer, reshaped to each parameter's shape.
    pub fn to_gradients<M: Module>(&self, model: &M) -> GradientsParams {
        struct Emit<'a> {
            vector: &'a ParamVector,
            out: GradientsParams,
        }
        impl ModuleVisitor for Emit<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(slot) = self.vector.slot(param.id) {
                    let dims: [usize; D] = slot
                        .shape
                        .clone()
                        .try_into()
                        .expect("a slot keeps the rank of the parameter it was taken from");
                    self.out
                        .register::<D>(param.id, slot.flat.clone().reshape(dims));
                }
            }
        }
        let mut visitor = Emit {
            vector: self,
            out: GradientsParams::new(),
        };
        model.visit(&mut visitor);
        visitor.out
    }

    /// A clone of `model` moved by this vector: w + ε. The original is untouched.
    ///
    /// The moved parameters keep their ids and gradient settings, so the
    /// gradient taken at w + ε can be applied to w by id.
    pub fn perturb<M: Module>(&self, model: &M) -> M {
        struct Shift<'a> {
            vector: &'a ParamVector,
        }
        impl ModuleMapper for Shift<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let Some(slot) = self.vector.slot(param.id) else {
                    return param;
                };
                let (id, tensor, mapper) = param.consume();
                let require_grad = tensor.is_require_grad();
                let checkpointing = tensor.gradient_checkpointing_strategy();
                let dims = tensor.dims();
                let shifted = tensor.inner() + slot.flat.clone().reshape(dims);
                let mut lifted = Tensor::from_inner(shifted);
                if let Some(strategy) = checkpointing {
                    lifted = lifted.with_gradient_checkpointing_strategy(strategy);
                }
                if require_grad {
                    lifted = lifted.require_grad();
                }
                Param::from_mapped_value(id, lifted, mapper)
            }
        }
        model.clone().map(&mut Shift { vector: self })
    }

    fn slot(&self, id: ParamId) -> Option<&ParamSlot> {
        self.index.get(&id).map(|&i| &self.slots[i])
    }

    /// Whether the vector has no parameter slots at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Number of parameter slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Σ x² over all entries, as a one-element tensor on the device (no host read).
    pub fn squared_norm(&self) -> Option<Tensor<1>> {
        self.slots
            .iter()
            .map(|slot| slot.flat.clone().square().sum())
            .reduce(|a, b| a + b)
    }

    /// ‖x‖ read to the host; 0 for an empty vector. The one scalar sync per use.
    pub fn norm(&self) -> f64 {
        match self.squared_norm() {
            Some(sq) => f64::from(sq.into_scalar::<f32>()).sqrt(),
            None => 0.0,
        }
    }

    /// Σ x² read to the host; 0 for an empty vector.
    pub fn squared_norm_host(&self) -> f64 {
        self.squared_norm()
            .map_or(0.0, |sq| f64::from(sq.into_scalar::<f32>()))
    }

    /// Σ xᵢ yᵢ over the slots both vectors share, as a one-element device tensor.
    pub fn dot(&self, other: &ParamVector) -> Option<Tensor<1>> {
        self.slots
            .iter()
            .filter_map(|slot| {
                other
                    .slot(slot.id)
                    .map(|o| (slot.flat.clone() * o.flat.clone()).sum())
            })
            .reduce(|a, b| a + b)
    }

    /// cos(xₖ, yₖ) for each parameter k both vectors hold, in module order,
    /// read to the host in one transfer; a parameter where either side is
    /// zero has no angle and is left out.
    pub fn per_tensor_cosines(&self, other: &ParamVector) -> Vec<f64> {
        let parts: Vec<Tensor<1>> = self
            .slots
            .iter()
            .filter_map(|slot| {
                other.slot(slot.id).map(|o| {
                    let (x, y) = (slot.flat.clone(), o.flat.clone());
                    Tensor::cat(
                        vec![
                            (x.clone() * y.clone()).sum(),
                            x.square().sum(),
                            y.square().sum(),
                        ],
                        0,
                    )
                })
            })
            .collect();
        if parts.is_empty() {
            return Vec::new();
        }
        let values = Tensor::cat(parts, 0)
            .to_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        values
            .chunks_exact(3)
            .filter(|c| c[1] > 0.0 && c[2] > 0.0)
            .map(|c| f64::from(c[0]) / (f64::from(c[1]) * f64::from(c[2])).sqrt())
            .collect()
    }

    /// x · s for a host scalar s.
    pub fn scale(&self, s: f64) -> ParamVector {
        self.map_slots(|flat| flat.mul_scalar(s as f32))
    }

    /// x · t for a one-element device tensor t (broadcast).
    pub fn scale_by(&self, t: &Tensor<1>) -> ParamVector {
        self.map_slots(|flat| flat * t.clone())
    }

    /// Elementwise x ⊙ y over this vector's slots (missing slots in `other` count as zero).
    pub fn hadamard(&self, other: &ParamVector) -> ParamVector {
        self.map_slots_with(other, |x, y| match y {
            Some(y) => x * y.clone(),
            None => x.zeros_like(),
        })
    }

    /// a·x + b·y over the union of slots (a missing slot counts as zero).
    pub fn linear_combination(&self, a: f64, other: &ParamVector, b: f64) -> ParamVector {
        let mut out = ParamVector::default();
        for slot in &self.slots {
            let flat = match other.slot(slot.id) {
                Some(o) => {
                    slot.flat.clone().mul_scalar(a as f32) + o.flat.clone().mul_scalar(b as f32)
                }
                None => slot.flat.clone().mul_scalar(a as f32),
            };
            out.push(ParamSlot {
                flat,
                ..slot.clone()
            });
        }
        for slot in &other.slots {
            if !self.index.contains_key(&slot.id) {
                out.push(ParamSlot {
                    flat: slot.flat.clone().mul_scalar(b as f32),
                    ..slot.clone()
                });
            }
        }
        out
    }

    /// x + s·y over the union of slots, with s a one-element device tensor.
    pub fn add_scaled(&self, other: &ParamVector, s: &Tensor<1>) -> ParamVector {
        let mut out = ParamVector::default();
        for slot in &self.slots {
            let flat = match other.slot(slot.id) {
                Some(o) => slot.flat.clone() + o.flat.clone() * s.clone(),
                None => slot.flat.clone(),
            };
            out.push(ParamSlot {
                flat,
                ..slot.clone()
            });
        }
        for slot in &other.slots {
            if !self.index.contains_key(&slot.id) {
                out.push(ParamSlot {
                    flat: slot.flat.clone() * s.clone(),
                    ..slot.clone()
                });
            }
        }
        out
    }

    /// Each parameter's tensor divided by its own norm (plus [`NORM_EPSILON`]).
    pub fn normalize_per_tensor(&self) -> ParamVector {
        self.map_slots(|flat| {
            let norm = flat
                .clone()
                .square()
                .sum()
                .sqrt()
                .add_scalar(NORM_EPSILON as f32);
            flat / norm
        })
    }

    /// Each parameter's tensor x divided by ‖x + shift‖, `shift` added to
    /// every entry inside the norm only (the authors' `torch.norm(g + 1e-8)`).
    pub fn normalize_per_tensor_shifted(&self, shift: f32) -> ParamVector {
        self.map_slots(|flat| {
            let norm = flat.clone().add_scalar(shift).square().sum().sqrt();
            flat / norm
        })
    }

    /// Each parameter's tensor shrunk, if needed, to a norm of at most `radius`.
    pub fn clip_per_tensor(&self, radius: f64) -> ParamVector {
        let radius = radius as f32;
        self.map_slots(|flat| {
            // factor = r / max(‖x‖, r): 1 inside the ball, r/‖x‖ outside it.
            let norm = flat.clone().square().sum().sqrt();
            let factor = norm.clamp_min(radius).recip().mul_scalar(radius);
            flat * factor
        })
    }

    fn map_slots(&self, f: impl Fn(Tensor<1>) -> Tensor<1>) -> ParamVector {
        let mut out = ParamVector::default();
        for slot in &self.slots {
            out.push(ParamSlot {
                flat: f(slot.flat.clone()),
                ..slot.clone()
            });
        }
        out
    }

    fn map_slots_with(
        &self,
        other: &ParamVector,
        f: impl Fn(Tensor<1>, Option<&Tensor<1>>) -> Tensor<1>,
    ) -> ParamVector {
        let mut out = ParamVector::default();
        for slot in &self.slots {
            out.push(ParamSlot {
                flat: f(slot.flat.clone(), other.slot(slot.id).map(|o| &o.flat)),
                ..slot.clone()
            });
        }
        out
    }

    /// One parameter's values, flattened in row-major order, read to the host
    /// (for inspection and tests; never used inside a step).
    pub fn values(&self, id: ParamId) -> Option<Vec<f32>> {
        self.slot(id).and_then(|slot| {
            slot.flat
                .to_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .ok()
        })
    }

    /// The current weights of `model` for every parameter that has a slot in
    /// `like`, flattened (the point a perturbation is taken from).
    pub fn weights_like<M: Module>(model: &M, like: &ParamVector) -> Self {
        struct Collect<'a> {
            like: &'a ParamVector,
            out: ParamVector,
        }
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if self.like.index.contains_key(&param.id) {
                    let value = param.val().inner();
                    let shape = value.dims().to_vec();
                    self.out.push(ParamSlot {
                        id: param.id,
                        shape,
                        flat: value.reshape([-1]),
                    });
                }
            }
        }
        let mut visitor = Collect {
            like,
            out: ParamVector::default(),
        };
        model.visit(&mut visitor);
        visitor.out
    }

    /// A vector with this one's slots (ids, shapes, devices) whose values
    /// `f(slot index, shape, values)` computes on the host from the slot's
    /// current values. For set-up work (random directions, per-filter
    /// scaling), never inside a step.
    pub fn map_host(&self, mut f: impl FnMut(usize, &[usize], Vec<f32>) -> Vec<f32>) -> Self {
        let mut out = ParamVector::default();
        for (i, slot) in self.slots.iter().enumerate() {
            let values = slot
                .flat
                .to_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            let n = values.len();
            let mapped = f(i, &slot.shape, values);
            assert_eq!(mapped.len(), n, "map_host must keep every slot's length");
            let device = slot.flat.device();
            out.push(ParamSlot {
                id: slot.id,
                shape: slot.shape.clone(),
                flat: Tensor::<1>::from_data(TensorData::new(mapped, [n]), &device),
            });
        }
        out
    }

    /// Every slot's values read to the host, in module order.
    pub fn host_values(&self) -> Vec<Vec<f32>> {
        self.slots
            .iter()
            .map(|slot| {
                slot.flat
                    .to_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Number of scalar entries over all slots.
    pub fn num_entries(&self) -> usize {
        self.slots
            .iter()
            .map(|slot| slot.shape.iter().product::<usize>())
            .sum()
    }

    /// The parameter ids with a slot, in module order.
    pub fn ids(&self) -> Vec<ParamId> {
        self.slots.iter().map(|slot| slot.id).collect()
    }

    /// The slots as host data, for saving: (id, shape, flat values).
    pub(crate) fn to_saved(&self) -> Vec<SavedSlot> {
        self.slots
            .iter()
            .map(|slot| SavedSlot {
                id: slot.id.val(),
                shape: slot.shape.clone(),
                data: slot.flat.to_data(),
            })
            .collect()
    }

    /// Rebuilds a vector from saved slots, each on the device of the model's
    /// parameter with the same id. Errors (naming the parameter) when the
    /// model has no such parameter or has it with another shape.
    pub(crate) fn from_saved(
        saved: Vec<SavedSlot>,
        params: &ParamInventory,
    ) -> Result<Self, String> {
        let mut out = ParamVector::default();
        for slot in saved {
            let id = ParamId::from(slot.id);
            let (shape, device) = params
                .get(id)
                .ok_or_else(|| format!("parameter {id} is not a parameter of the model"))?;
            if *shape != slot.shape {
                return Err(format!(
                    "parameter {id} has shape {shape:?} in the model but {:?} in the state",
                    slot.shape
                ));
            }
            out.push(ParamSlot {
                id,
                shape: slot.shape,
                flat: Tensor::<1>::from_data(slot.data, device).inner(),
            });
        }
        Ok(out)
    }
}

/// The float parameters of a model: id → (shape, device), for checking and
/// placing restored state.
pub(crate) struct ParamInventory {
    params: HashMap<ParamId, (Vec<usize>, Device)>,
}

impl ParamInventory {
    /// Every float parameter of `model`.
    pub(crate) fn of<M: Module>(model: &M) -> Self {
        struct Collect {
            params: HashMap<ParamId, (Vec<usize>, Device)>,
        }
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let value = param.val();
                self.params
                    .insert(param.id, (value.dims().to_vec(), value.device()));
            }
        }
        let mut visitor = Collect {
            params: HashMap::new(),
        };
        model.visit(&mut visitor);
        Self {
            params: visitor.params,
        }
    }

    /// Shape and device of parameter `id`, if the model has it.
    pub(crate) fn get(&self, id: ParamId) -> Option<&(Vec<usize>, Device)> {
        self.params.get(&id)
    }
}

/// A slot as stored in an optimizer state file.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedSlot {
    pub id: u64,
    pub shape: Vec<usize>,
    pub data: TensorData,
}
