//! Train stage: the training loop, early stopping, checkpoints and run records.

pub mod record;
