//! Saving model weights as safetensors and the per-epoch resume checkpoint.
//!
//! The checkpoint is ONE file (trainer state, model weights and optimizer
//! state together) written atomically, so a crash can never pair the weights
//! of one epoch with the optimizer state of another.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use super::record::write_atomic;

/// Serialises a module's parameters as safetensors bytes.
pub fn model_to_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("serialising model weights: {e}"))?;
    store
        .get_bytes()
        .map_err(|e| anyhow::anyhow!("serialising model weights: {e}"))
}

/// Loads parameters from safetensors bytes into `model`; every parameter of
/// the model must be present (a mismatched architecture is an error).
pub fn model_from_bytes<M: Module>(mut model: M, bytes: Vec<u8>, what: &str) -> Result<M> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("reading the weights in {what}: {e}"))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        bail!(
            "the weights in {what} do not fit this model ({} missing, {} errors; first: {:?})",
            result.missing.len(),
            result.errors.len(),
            result.missing.first().map(|m| &m.0)
        );
    }
    Ok(model)
}

/// Writes a module's weights to a safetensors file, atomically.
pub fn save_model<M: Module>(model: &M, path: &Path) -> Result<()> {
    write_atomic(path, &model_to_bytes(model)?)
}

/// Reads a module's weights from a safetensors file written by [`save_model`].
pub fn load_model<M: Module>(model: M, path: &Path) -> Result<M> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    model_from_bytes(model, bytes, &path.display().to_string())
}

/// Serialises a module as a burn record, which (unlike safetensors) keeps
/// the parameter ids the optimizer state is keyed by: what a resume needs.
pub fn model_record_to_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("serialising the model checkpoint: {e}"))?;
    Ok(bytes.to_vec())
}

/// Restores a module (values and parameter ids) from [`model_record_to_bytes`].
pub fn model_record_from_bytes<M: Module>(model: M, bytes: Vec<u8>, what: &str) -> Result<M> {
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("reading the model checkpoint in {what}: {e}"))?;
    model
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("the model checkpoint in {what} does not fit this model: {e}"))
}

const MAGIC: &[u8; 8] = b"GSAMCKP2";

/// The three parts of a resume checkpoint.
pub struct Checkpoint {
    /// Trainer state (MessagePack).
    pub trainer_state: Vec<u8>,
    /// Model weights and parameter ids (burn record).
    pub model: Vec<u8>,
    /// Optimizer state bytes.
    pub optimizer: Vec<u8>,
}

impl Checkpoint {
    /// Writes the checkpoint as one file, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(
            MAGIC.len() + 24 + self.trainer_state.len() + self.model.len() + self.optimizer.len(),
        );
        bytes.extend_from_slice(MAGIC);
        for part in [&self.trainer_state, &self.model, &self.optimizer] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part);
        }
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint written by [`Checkpoint::write`].
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        ensure!(
            bytes.starts_with(MAGIC),
            "{} is not a graphsam checkpoint",
            path.display()
        );
        let mut rest = &bytes[MAGIC.len()..];
        let mut parts = Vec::with_capacity(3);
        for name in ["trainer state", "model weights", "optimizer state"] {
            ensure!(
                rest.len() >= 8,
                "{} is truncated before its {name}",
                path.display()
            );
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
            rest = &rest[8..];
            ensure!(
                rest.len() >= len,
                "{} is truncated in its {name}",
                path.display()
            );
            parts.push(rest[..len].to_vec());
            rest = &rest[len..];
        }
        let optimizer = parts.pop().expect("three parts");
        let model = parts.pop().expect("three parts");
        let trainer_state = parts.pop().expect("three parts");
        Ok(Checkpoint {
            trainer_state,
            model,
            optimizer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.bin");
        let ckpt = Checkpoint {
            trainer_state: b"{\"epoch\":3}".to_vec(),
            model: vec![1, 2, 3, 4],
            optimizer: vec![9; 17],
        };
        ckpt.write(&path).unwrap();
        let back = Checkpoint::read(&path).unwrap();
        assert_eq!(back.trainer_state, ckpt.trainer_state);
        assert_eq!(back.model, ckpt.model);
        assert_eq!(back.optimizer, ckpt.optimizer);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = Checkpoint::read(&path).err().unwrap().to_string();
        assert!(err.contains("truncated in its optimizer state"), "{err}");
        std::fs::write(&path, b"not a checkpoint").unwrap();
        assert!(Checkpoint::read(&path).is_err());
    }
}
