//! Saving and restoring all optimizer state (base optimizer moments, g_h, g_s,
//! g_v, AE-SAM's statistics, counters, ρ) so that a resumed run continues bit
//! for bit.
//!
//! Format: MessagePack (rmp-serde) of [`SavedState`]; the base optimizer's
//! state is burn's own burnpack record, embedded as bytes. Tensors are kept as
//! their raw bytes and dtype, floats as their exact bits. States are keyed by
//! burn `ParamId`s, which burn persists in module records, so load the model
//! from its checkpoint before stepping with a restored optimizer.

use std::path::Path;

use burn::module::Module;
use burn::module::ParamId;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::OptimizerConfig;
use crate::error::StateError;
use crate::optimizer::{PassCounters, Progress, SharpnessOptimizer};
use crate::param_vector::{ParamInventory, ParamVector, SavedSlot};

/// Bumped when the layout below changes incompatibly.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SavedState {
    format: u32,
    optimizer: String,
    config: OptimizerConfig,
    counters: PassCounters,
    progress: Progress,
    g_h: Option<Vec<SavedSlot>>,
    g_s: Option<(Vec<SavedSlot>, f64)>,
    g_v: Option<Vec<SavedSlot>>,
    /// Ids of the parameters the last update touched (the base optimizer's
    /// moments are keyed by them); absent in states saved before they were kept.
    #[serde(default)]
    param_ids: Vec<u64>,
    #[serde(with = "serde_bytes")]
    base: Vec<u8>,
}

impl<M: Module> SharpnessOptimizer<M> {
    /// All state as bytes (reads the state tensors to the host once).
    pub fn save_state(&self) -> Result<Vec<u8>, StateError> {
        let base = self
            .base
            .into_bytes()
            .map_err(|e| StateError::Base(e.to_string()))?;
        let saved = SavedState {
            format: FORMAT_VERSION,
            optimizer: self.config.name().to_string(),
            config: self.config.clone(),
            counters: self.counters,
            progress: self.progress.clone(),
            g_h: self.g_h.as_ref().map(ParamVector::to_saved),
            g_s: self.g_s.as_ref().map(|(g, n)| (g.to_saved(), *n)),
            g_v: self.g_v.as_ref().map(ParamVector::to_saved),
            param_ids: self.param_ids.iter().map(|id| id.val()).collect(),
            base: base.to_vec(),
        };
        rmp_serde::to_vec_named(&saved).map_err(|e| StateError::Encode(e.to_string()))
    }

    /// Restores state saved by [`save_state`](Self::save_state) from an
    /// optimizer of the same kind, for `model`. Every saved parameter id must
    /// be a parameter of `model` with the saved shape (else
    /// [`StateError::ForeignParameters`]), so load the model from the
    /// checkpoint saved with this state first: burn keeps parameter ids in
    /// module records. State tensors go to the device of their parameter.
    /// The configuration of `self` is kept (the saved one is informational),
    /// so a resumed run may change e.g. ρ₀.
    ///
    /// The base optimizer's moments are restored by burn on
    /// `Device::default()` and move to each parameter's device at the next
    /// step. With burn's `wgpu` backend compiled in, that default is the GPU:
    /// set `BURN_DEVICE=flex` (as the graphsam binary does) to keep CPU runs
    /// off it.
    pub fn load_state(&mut self, bytes: &[u8], model: &M) -> Result<(), StateError> {
        let saved: SavedState =
            rmp_serde::from_slice(bytes).map_err(|e| StateError::Decode(e.to_string()))?;
        if saved.format != FORMAT_VERSION {
            return Err(StateError::Decode(format!(
                "format version {} is not supported (expected {FORMAT_VERSION})",
                saved.format
            )));
        }
        if saved.optimizer != self.config.name() {
            return Err(StateError::WrongOptimizer {
                saved: saved.optimizer,
                loading: self.config.name().to_string(),
            });
        }
        // Check everything against the model before changing anything.
        let params = ParamInventory::of(model);
        let missing: Vec<u64> = saved
            .param_ids
            .iter()
            .copied()
            .filter(|&id| params.get(ParamId::from(id)).is_none())
            .collect();
        if let Some(first) = missing.first() {
            return Err(StateError::ForeignParameters {
                problem: format!(
                    "{} of the {} saved parameter ids are not in the model (first: {first})",
                    missing.len(),
                    saved.param_ids.len()
                ),
            });
        }
        let restore = |slots: Option<Vec<SavedSlot>>| -> Result<Option<ParamVector>, StateError> {
            slots
                .map(|s| ParamVector::from_saved(s, &params))
                .transpose()
                .map_err(|problem| StateError::ForeignParameters { problem })
        };
        let g_h = restore(saved.g_h)?;
        let g_v = restore(saved.g_v)?;
        let g_s = match saved.g_s {
            Some((slots, norm)) => restore(Some(slots))?.map(|g| (g, norm)),
            None => None,
        };
        let base = self
            .base
            .clone()
            .from_bytes(Bytes::from_bytes_vec(saved.base))
            .map_err(|e| StateError::Base(e.to_string()))?;
        self.base = base;
        self.counters = saved.counters;
        self.progress = saved.progress;
        self.g_h = g_h;
        self.g_s = g_s;
        self.g_v = g_v;
        self.param_ids = saved.param_ids.into_iter().map(ParamId::from).collect();
        Ok(())
    }

    /// Saves the state to a file (see [`save_state`](Self::save_state)).
    pub fn save_state_file(&self, path: impl AsRef<Path>) -> Result<(), StateError> {
        let path = path.as_ref();
        let bytes = self.save_state()?;
        std::fs::write(path, bytes).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Restores the state from a file, for `model` (see [`load_state`](Self::load_state)).
    pub fn load_state_file(&mut self, path: impl AsRef<Path>, model: &M) -> Result<(), StateError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.load_state(&bytes, model)
    }
}
