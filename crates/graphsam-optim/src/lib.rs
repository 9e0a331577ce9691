//! Sharpness-aware optimizers for any burn module: SAM/ASAM, GraphSAM, SAM-k
//! and LookSAM over a base Adam (or SGD), with the NoamLR schedule.
//!
//! The optimizers differ only in which gradients they need per step, so they
//! share one interface: the trainer passes a closure computing the loss and
//! gradients of a given model value on the current batch, and
//! [`SharpnessOptimizer::step`] decides where and how often to call it.
//!
//! ```ignore
//! let mut opt = OptimizerConfig::GraphSam(GraphSamConfig::default()).init::<MyModel>()?;
//! for epoch in 0..epochs {
//!     opt.start_epoch(epoch);
//!     for batch in batches {
//!         let lr = noam.lr_at(opt.global_step());
//!         let (next, report) = opt.step(lr, model, |m: &MyModel| {
//!             let loss = m.loss(&batch);
//!             let value = loss.clone().into_scalar::<f32>();
//!             Ok::<_, MyError>((value, GradientsParams::from_grads(loss.backward(), m)))
//!         })?;
//!         model = next;
//!     }
//! }
//! ```
//!
//! This crate depends on no model, chemistry or data code.

pub mod backend;
pub mod config;
pub mod error;
pub mod optimizer;
pub mod param_vector;
pub mod schedule;
mod state;

pub use backend::{BackendUnavailable, ComputeBackend, GpuAdapter, ReadyDevice};
pub use config::{
    AdamConfig, AnchorPolicy, BaseOptimizerConfig, GraphSamConfig, LookSamConfig, OPTIMIZER_NAMES,
    OptimizerConfig, SamConfig, SamKConfig, SgdConfig, UnknownOptimizer,
};
pub use error::{ConfigError, EvalPoint, StateError, StepError, StepWarning};
pub use optimizer::{PassCounters, SharpnessOptimizer, StepReport};
pub use param_vector::{NORM_EPSILON, ParamVector};
pub use schedule::{NoamLr, NoamLrConfig, RhoDecay, RhoSchedule};
