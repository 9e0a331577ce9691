//! Multi-task metrics with missing labels: ROC-AUC, PRC-AUC, RMSE, MAE.
//!
//! Each task is scored on the molecules that have its label; the reported
//! value is the mean over tasks that can be scored (classification tasks
//! with a single class among the evaluated molecules are skipped, as in
//! chemprop and MoleculeNet).
//!
//! PRC-AUC is chemprop v1's `prc-auc`: scikit-learn's `precision_recall_curve`
//! (every distinct score a threshold, plus the end point recall 0 /
//! precision 1) integrated with the trapezoidal rule (`sklearn.metrics.auc`).
//! [`average_precision`] (scikit-learn's step-wise sum) is provided alongside.

use serde::{Deserialize, Serialize};

use super::error::{DataError, Result};
use super::registry::Metric;

/// One metric over all tasks: the mean and each task's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricScore {
    /// The metric.
    pub metric: Metric,
    /// Mean over the tasks that could be scored.
    pub value: f64,
    /// Per task; `None` where the task could not be scored.
    pub per_task: Vec<Option<f64>>,
}

/// Scores at each distinct threshold, highest first: cumulative (true
/// positives, false positives) counts, ties grouped like scikit-learn's
/// `_binary_clf_curve`.
fn threshold_counts(labels: &[bool], scores: &[f32]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = Vec::new();
    let (mut tp, mut fp) = (0f64, 0f64);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_tie {
            points.push((tp, fp));
        }
    }
    points
}

fn class_counts(labels: &[bool]) -> (usize, usize) {
    let pos = labels.iter().filter(|&&l| l).count();
    (pos, labels.len() - pos)
}

/// Area under the ROC curve for one task, ties handled as scikit-learn
/// (trapezoids between distinct thresholds, i.e. tied pairs count ½).
/// `None` if the labels are all one class.
pub fn roc_auc(labels: &[bool], scores: &[f32]) -> Option<f64> {
    let (pos, neg) = class_counts(labels);
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut area = 0.0;
    let (mut prev_tp, mut prev_fp) = (0.0, 0.0);
    for (tp, fp) in threshold_counts(labels, scores) {
        area += (fp - prev_fp) * (tp + prev_tp) / 2.0;
        (prev_tp, prev_fp) = (tp, fp);
    }
    Some(area / (pos as f64 * neg as f64))
}

/// chemprop v1's PRC-AUC for one task: trapezoidal area under scikit-learn's
/// precision-recall curve. `None` if the labels are all one class.
pub fn prc_auc(labels: &[bool], scores: &[f32]) -> Option<f64> {
    let (pos, neg) = class_counts(labels);
    if pos == 0 || neg == 0 {
        return None;
    }
    let p = pos as f64;
    // The curve starts at (recall 0, precision 1).
    let (mut prev_r, mut prev_p) = (0.0, 1.0);
    let mut area = 0.0;
    for (tp, fp) in threshold_counts(labels, scores) {
        let (r, pr) = (tp / p, tp / (tp + fp));
        area += (r - prev_r) * (pr + prev_p) / 2.0;
        (prev_r, prev_p) = (r, pr);
    }
    Some(area)
}

/// scikit-learn's `average_precision_score` for one task: Σ (Rₙ − Rₙ₋₁)·Pₙ
/// over distinct thresholds. `None` if the labels are all one class.
pub fn average_precision(labels: &[bool], scores: &[f32]) -> Option<f64> {
    let (pos, neg) = class_counts(labels);
    if pos == 0 || neg == 0 {
        return None;
    }
    let p = pos as f64;
    let mut prev_r = 0.0;
    let mut ap = 0.0;
    for (tp, fp) in threshold_counts(labels, scores) {
        let r = tp / p;
        ap += (r - prev_r) * tp / (tp + fp);
        prev_r = r;
    }
    Some(ap)
}

/// Root mean squared error; `None` for no values.
pub fn rmse(targets: &[f32], predictions: &[f32]) -> Option<f64> {
    if targets.is_empty() {
        return None;
    }
    let sse: f64 = targets
        .iter()
        .zip(predictions)
        .map(|(&t, &p)| (t as f64 - p as f64).powi(2))
        .sum();
    Some((sse / targets.len() as f64).sqrt())
}

/// Mean absolute error; `None` for no values.
pub fn mae(targets: &[f32], predictions: &[f32]) -> Option<f64> {
    if targets.is_empty() {
        return None;
    }
    let sae: f64 = targets
        .iter()
        .zip(predictions)
        .map(|(&t, &p)| (t as f64 - p as f64).abs())
        .sum();
    Some(sae / targets.len() as f64)
}

/// Scores row-major `rows × n_tasks` predictions against targets of the same
/// shape (NaN = missing label; those cells are ignored). Classification
/// predictions may be probabilities or logits (the ranking metrics only use
/// their order); regression predictions must be in target units (map them
/// back with [`super::TargetScaler::inverse_transform`] first).
///
/// Errors on mismatched shapes, a non-finite prediction where a label is
/// present, or when no task can be scored.
pub fn evaluate(
    metric: Metric,
    predictions: &[f32],
    targets: &[f32],
    n_tasks: usize,
) -> Result<MetricScore> {
    if predictions.len() != targets.len() {
        return Err(DataError::ShapeMismatch {
            what: "predictions vs targets",
            expected: targets.len(),
            actual: predictions.len(),
        });
    }
    if n_tasks == 0 || !targets.len().is_multiple_of(n_tasks) {
        return Err(DataError::ShapeMismatch {
            what: "targets per row (n_tasks)",
            expected: n_tasks,
            actual: targets.len(),
        });
    }
    let rows = targets.len() / n_tasks;
    let mut per_task = Vec::with_capacity(n_tasks);
    for task in 0..n_tasks {
        let mut ys = Vec::with_capacity(rows);
        let mut ps = Vec::with_capacity(rows);
        for row in 0..rows {
            let idx = row * n_tasks + task;
            let y = targets[idx];
            if y.is_nan() {
                continue;
            }
            let p = predictions[idx];
            if !p.is_finite() {
                return Err(DataError::NonFinitePrediction {
                    index: idx,
                    molecule: row,
                    task,
                    value: p,
                });
            }
            ys.push(y);
            ps.push(p);
        }
        let labels = || ys.iter().map(|&y| y >= 0.5).collect::<Vec<bool>>();
        per_task.push(match metric {
            Metric::RocAuc => roc_auc(&labels(), &ps),
            Metric::PrcAuc => prc_auc(&labels(), &ps),
            Metric::Rmse => rmse(&ys, &ps),
            Metric::Mae => mae(&ys, &ps),
        });
    }
    let scored: Vec<f64> = per_task.iter().flatten().copied().collect();
    if scored.is_empty() {
        let need = match metric {
            Metric::RocAuc | Metric::PrcAuc => "both classes",
            Metric::Rmse | Metric::Mae => "a label",
        };
        return Err(DataError::NoScorableTask {
            metric: metric.name(),
            need,
        });
    }
    let value = scored.iter().sum::<f64>() / scored.len() as f64;
    Ok(MetricScore {
        metric,
        value,
        per_task,
    })
}
