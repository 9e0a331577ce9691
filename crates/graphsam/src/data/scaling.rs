//! Standardisation of regression targets with training-split statistics.

use serde::{Deserialize, Serialize};

use super::load::MoleculeDataset;

/// Per-task mean and standard deviation of the training targets. Targets
/// are trained on as (y − mean)/std; predictions are mapped back with
/// [`TargetScaler::inverse_transform`] before metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetScaler {
    /// Mean per task (0 for a task without training labels).
    pub means: Vec<f32>,
    /// Population standard deviation per task; 1 where it is 0 or undefined,
    /// so a constant task is centred but not blown up.
    pub stds: Vec<f32>,
}

impl TargetScaler {
    /// Fits on the molecules `indices` of `dataset`, ignoring missing labels.
    pub fn fit(dataset: &MoleculeDataset, indices: &[usize]) -> Self {
        Self::fit_rows(&dataset.targets, dataset.n_tasks, indices)
    }

    /// Fits on rows `indices` of a row-major `targets` matrix with `n_tasks`
    /// columns (NaN = missing). Sums in f64 for accuracy.
    pub fn fit_rows(targets: &[f32], n_tasks: usize, indices: &[usize]) -> Self {
        let mut sum = vec![0f64; n_tasks];
        let mut count = vec![0usize; n_tasks];
        for &i in indices {
            for (t, &v) in targets[i * n_tasks..(i + 1) * n_tasks].iter().enumerate() {
                if !v.is_nan() {
                    sum[t] += v as f64;
                    count[t] += 1;
                }
            }
        }
        let means: Vec<f64> = sum
            .iter()
            .zip(&count)
            .map(|(&s, &c)| if c > 0 { s / c as f64 } else { 0.0 })
            .collect();
        let mut sq = vec![0f64; n_tasks];
        for &i in indices {
            for (t, &v) in targets[i * n_tasks..(i + 1) * n_tasks].iter().enumerate() {
                if !v.is_nan() {
                    sq[t] += (v as f64 - means[t]).powi(2);
                }
            }
        }
        let stds = sq
            .iter()
            .zip(&count)
            .map(|(&s, &c)| {
                let std = if c > 0 { (s / c as f64).sqrt() } else { 0.0 };
                if std > 0.0 && std.is_finite() {
                    std as f32
                } else {
                    1.0
                }
            })
            .collect();
        TargetScaler {
            means: means.iter().map(|&m| m as f32).collect(),
            stds,
        }
    }

    /// The identity scaler for `n_tasks` tasks (classification).
    pub fn identity(n_tasks: usize) -> Self {
        TargetScaler {
            means: vec![0.0; n_tasks],
            stds: vec![1.0; n_tasks],
        }
    }

    /// Number of tasks.
    pub fn n_tasks(&self) -> usize {
        self.means.len()
    }

    /// Standardises a row-major `rows × n_tasks` matrix in place; NaN stays NaN.
    pub fn transform(&self, values: &mut [f32]) {
        let n = self.n_tasks().max(1);
        for row in values.chunks_mut(n) {
            for ((v, m), s) in row.iter_mut().zip(&self.means).zip(&self.stds) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Maps standardised values (predictions) back to target units in place.
    pub fn inverse_transform(&self, values: &mut [f32]) {
        let n = self.n_tasks().max(1);
        for row in values.chunks_mut(n) {
            for ((v, m), s) in row.iter_mut().zip(&self.means).zip(&self.stds) {
                *v = *v * s + m;
            }
        }
    }
}
