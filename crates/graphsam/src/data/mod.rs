//! Data stage: dataset registry and resolution, CSV loading with missing labels, splits, scaling, batching and metrics.
//!
//! Typical flow: [`Registry::get`] a [`DatasetSpec`] (or [`DatasetSpec::custom`]),
//! [`DatasetResolver::resolve`] it to a file, [`MoleculeDataset::load`] it
//! with [`LoadOptions`], [`make_split`] it, fit a [`TargetScaler`] on the
//! training part (regression), iterate [`batches`] of [`DenseBatch`] or
//! [`PackedBatch`], and score predictions with [`evaluate`].

pub mod batch;
pub mod error;
pub mod load;
pub mod metrics;
pub mod registry;
pub mod resolve;
pub mod scaling;
pub mod split;
pub mod stream;

pub use batch::{
    BatchIter, BatchLayout, DenseBatch, PackedBatch, batches, sequential_batches, shuffled_batches,
};
pub use error::{DataError, Result};
pub use load::{COMPT_ATOM_LIMIT, LoadOptions, MoleculeDataset, SkipReason, SkippedRow};
pub use metrics::{MetricScore, evaluate};
pub use registry::{DatasetSpec, MOLECULENET_BASE_URL, Metric, Registry, TaskType};
pub use resolve::{
    DataSource, DatasetAvailability, DatasetResolver, DownloadProgress, ResolvedFile,
};
pub use scaling::TargetScaler;
pub use split::{
    Split, SplitKind, SplitSizes, SplitSummary, make_split, read_split_file, repeated_splits,
    summarize_split,
};
pub use stream::{FeaturizedChunk, InputFormat, InputRow, MoleculeSource, featurize_rows};
