//! Data stage: dataset registry and resolution, CSV loading with missing labels, splits, scaling, batching and metrics.
