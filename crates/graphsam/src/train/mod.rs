//! Train stage: the training loop, early stopping, checkpoints and run records.

pub mod bench;
pub mod checkpoint;
pub mod compare;
pub mod inference;
pub mod record;
pub mod run;
pub mod screen;
pub mod sharpness;
pub mod stats;
pub mod trainer;

pub use run::{ModelCard, RunConfig, RunSummary, RunTemplate, device_without_autodiff, run_seed};
pub use trainer::{
    Interrupted, SilentObserver, TrainObserver, TrainOutcome, TrainSettings, clear_stop_request,
    embed_indices, evaluate_split, fit, predict_indices, probability, request_stop, stop_requested,
};
