#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod optimizer;
pub mod param_vector;
pub mod schedule;
pub mod sharpness;
mod state;

pub use config::{
    AdamConfig, AeSamConfig, AnchorPolicy, BaseOptimizerConfig, GraphSamConfig, LookSamConfig,
    OPTIMIZER_NAMES, OptimizerConfig, RstConfig, SamConfig, SamKConfig, SgdConfig,
    UnknownOptimizer,
};
pub use error::{ConfigError, EvalPoint, StateError, StepError, StepFailure, StepWarning};
pub use optimizer::{PassCounters, SharpnessOptimizer, StepReport};
pub use param_vector::{NORM_EPSILON, ParamVector};
pub use schedule::{
    NoamLr, NoamLrConfig, RhoDecay, RhoSchedule, RstSchedule, ae_sam_threshold, rst_draw,
};
