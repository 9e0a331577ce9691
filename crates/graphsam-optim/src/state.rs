//! Saving and restoring all optimizer state (base optimizer moments, g_h, g_s,
//! g_v, counters, ρ) so that a resumed run continues bit for bit.
//!
//! Format: MessagePack (rmp-serde) of [`SavedState`]; the base optimizer's
//! state is burn's own burnpack record, embedded as bytes. Tensors are kept as
//! their raw bytes and dtype, floats as their exact bits. States are keyed by
//! burn `ParamId`s, which burn persists in module records, so load the model
//! from its checkpoint before stepping with a restored optimizer.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::config::OptimizerConfig;
use crate::error::StateError;
use crate::optimizer::{PassCounters, Progress, SharpnessOptimizer};
use crate::param_vector::{ParamVector, SavedSlot};

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
            base: base.to_vec(),
        };
        rmp_serde::to_vec_named(&saved).map_err(|e| StateError::Encode(e.to_string()))
    }

    /// Restores state saved by [`save_state`](Self::save_state) from an
    /// optimizer of the same kind. State tensors are placed on `device`, which
    /// should be the model's device. The configuration of `self` is kept (the
    /// saved one is informational), so a resumed run may change e.g. ρ₀.
    ///
    /// The base optimizer's moments are restored by burn on
    /// `Device::default()` and move to each parameter's device at the next
    /// step. With the `wgpu` feature that default is the GPU: set
    /// `BURN_DEVICE=flex` (as the graphsam binary does) to keep CPU runs off it.
    pub fn load_state(&mut self, bytes: &[u8], device: &Device) -> Result<(), StateError> {
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
        let base = self
            .base
            .clone()
            .from_bytes(Bytes::from_bytes_vec(saved.base))
            .map_err(|e| StateError::Base(e.to_string()))?;
        self.base = base;
        self.counters = saved.counters;
        self.progress = saved.progress;
        self.g_h = saved.g_h.map(|s| ParamVector::from_saved(s, device));
        self.g_s = saved.g_s.map(|(s, n)| (ParamVector::from_saved(s, device), n));
        self.g_v = saved.g_v.map(|s| ParamVector::from_saved(s, device));
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

    /// Restores the state from a file (see [`load_state`](Self::load_state)).
    pub fn load_state_file(
        &mut self,
        path: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(), StateError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.load_state(&bytes, device)
    }
}
