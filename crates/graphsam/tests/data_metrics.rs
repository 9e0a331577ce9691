//! Metrics against values computed once with scikit-learn 1.9.1 for the
//! same fixed inputs (roc_auc_score; auc(recall, precision) over
//! precision_recall_curve, which is chemprop v1's prc-auc;
//! average_precision_score; mean_squared_error; mean_absolute_error).

use approx::assert_abs_diff_eq;
use graphsam::data::metrics::{average_precision, mae, prc_auc, rmse, roc_auc};
use graphsam::data::{DataError, Metric, evaluate};

const LABELS: [u8; 10] = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0];
// Ties at 0.4 (two negatives, one positive) and 0.35 (two positives).
const SCORES: [f32; 10] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2, 0.9, 0.35, 0.7];

fn labels(v: &[u8]) -> Vec<bool> {
    v.iter().map(|&l| l == 1).collect()
}

#[test]
fn roc_auc_matches_sklearn_with_ties() {
    assert_abs_diff_eq!(
        roc_auc(&labels(&LABELS), &SCORES).unwrap(),
        0.68,
        epsilon = 1e-12
    );
    // Every score tied: sklearn gives 0.5.
    let tied = roc_auc(&labels(&[1, 0, 1, 0]), &[0.5; 4]).unwrap();
    assert_abs_diff_eq!(tied, 0.5, epsilon = 1e-12);
    // A perfect and a reversed ranking.
    assert_eq!(roc_auc(&labels(&[0, 0, 1]), &[0.1, 0.2, 0.3]), Some(1.0));
    assert_eq!(roc_auc(&labels(&[0, 0, 1]), &[0.3, 0.2, 0.1]), Some(0.0));
}

#[test]
fn prc_auc_is_trapezoid_over_sklearn_pr_curve() {
    assert_abs_diff_eq!(
        prc_auc(&labels(&LABELS), &SCORES).unwrap(),
        0.7416666666666667,
        epsilon = 1e-12
    );
    assert_abs_diff_eq!(
        prc_auc(&labels(&[1, 0, 1, 0]), &[0.5; 4]).unwrap(),
        0.75,
        epsilon = 1e-12
    );
    let y = labels(&[1, 0, 0, 1, 1]);
    let s = [0.3, 0.2, 0.6, 0.9, 0.1];
    assert_abs_diff_eq!(prc_auc(&y, &s).unwrap(), 0.711111111111111, epsilon = 1e-12);
}

#[test]
fn average_precision_matches_sklearn() {
    assert_abs_diff_eq!(
        average_precision(&labels(&LABELS), &SCORES).unwrap(),
        0.75,
        epsilon = 1e-12
    );
    assert_abs_diff_eq!(
        average_precision(&labels(&[1, 0, 1, 0]), &[0.5; 4]).unwrap(),
        0.5,
        epsilon = 1e-12
    );
    let y = labels(&[1, 0, 0, 1, 1]);
    let s = [0.3, 0.2, 0.6, 0.9, 0.1];
    assert_abs_diff_eq!(
        average_precision(&y, &s).unwrap(),
        0.7555555555555555,
        epsilon = 1e-12
    );
}

#[test]
fn single_class_tasks_have_no_auc() {
    assert_eq!(roc_auc(&labels(&[1, 1, 1]), &[0.1, 0.5, 0.9]), None);
    assert_eq!(prc_auc(&labels(&[0, 0]), &[0.1, 0.5]), None);
    assert_eq!(roc_auc(&[], &[]), None);
}

#[test]
fn rmse_and_mae_match_sklearn() {
    let t = [1.5, -0.3, 2.0, 0.7];
    let p = [1.0, 0.1, 2.5, 0.2];
    assert_abs_diff_eq!(rmse(&t, &p).unwrap(), 0.47696960070847283, epsilon = 1e-6);
    assert_abs_diff_eq!(mae(&t, &p).unwrap(), 0.475, epsilon = 1e-6);
    assert_eq!(rmse(&[], &[]), None);
}

#[test]
fn multitask_roc_masks_missing_and_skips_single_class_tasks() {
    // Task 0: the 10-molecule fixture. Task 1: labels only on rows 0..5
    // ([1,0,0,1,1], ROC-AUC 0.5), NaN elsewhere. Task 2: one class only.
    let nan = f32::NAN;
    let t1 = [1.0, 0.0, 0.0, 1.0, 1.0, nan, nan, nan, nan, nan];
    let s1 = [0.3, 0.2, 0.6, 0.9, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5];
    let mut targets = Vec::new();
    let mut preds = Vec::new();
    for i in 0..10 {
        targets.extend([LABELS[i] as f32, t1[i], 1.0]);
        // Predictions where a label is missing may be anything, even NaN.
        preds.extend([
            SCORES[i],
            if t1[i].is_nan() { f32::NAN } else { s1[i] },
            0.3,
        ]);
    }
    let score = evaluate(Metric::RocAuc, &preds, &targets, 3).unwrap();
    assert_abs_diff_eq!(score.per_task[0].unwrap(), 0.68, epsilon = 1e-12);
    assert_abs_diff_eq!(score.per_task[1].unwrap(), 0.5, epsilon = 1e-12);
    assert_eq!(score.per_task[2], None);
    assert_abs_diff_eq!(score.value, (0.68 + 0.5) / 2.0, epsilon = 1e-12);
}

#[test]
fn multitask_rmse_is_mean_of_task_rmses_over_present_labels() {
    let nan = f32::NAN;
    // Task 0 errors 1, 1 -> RMSE 1; task 1 errors 3 (one label) -> RMSE 3.
    let targets = [0.0, 5.0, 2.0, nan];
    let preds = [1.0, 2.0, 1.0, 100.0];
    let s = evaluate(Metric::Rmse, &preds, &targets, 2).unwrap();
    assert_eq!(s.per_task, vec![Some(1.0), Some(3.0)]);
    assert_abs_diff_eq!(s.value, 2.0, epsilon = 1e-12);
    let m = evaluate(Metric::Mae, &preds, &targets, 2).unwrap();
    assert_abs_diff_eq!(m.value, 2.0, epsilon = 1e-12);
}

#[test]
fn no_scorable_task_is_an_error() {
    let err = evaluate(Metric::RocAuc, &[0.1, 0.9], &[1.0, 1.0], 1).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NoScorableTask {
                metric: "roc-auc",
                ..
            }
        ),
        "{err}"
    );
    let err = evaluate(Metric::Rmse, &[0.1, 0.9], &[f32::NAN, f32::NAN], 1).unwrap_err();
    assert!(
        matches!(err, DataError::NoScorableTask { metric: "rmse", .. }),
        "{err}"
    );
}

#[test]
fn shape_mismatch_and_nan_predictions_are_errors() {
    let err = evaluate(Metric::Rmse, &[0.1], &[1.0, 2.0], 1).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ShapeMismatch {
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = evaluate(Metric::Rmse, &[0.1, 0.2, 0.3], &[1.0, 2.0, 3.0], 2).unwrap_err();
    assert!(matches!(err, DataError::ShapeMismatch { .. }), "{err}");
    let err = evaluate(Metric::Rmse, &[0.1, f32::NAN], &[1.0, 2.0], 1).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NonFinitePrediction {
                index: 1,
                molecule: 1,
                task: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn confident_logits_are_ranked_not_tied_at_one() {
    // Models hand `evaluate` log-odds. Above 17 the f32 sigmoid of each is
    // exactly 1.0, which would tie them all (AUC 0.5); the log-odds keep the order.
    let logits = [17.5f32, 18.0, 19.0, 20.0, 24.0, 30.0];
    let classes = [0u8, 1, 0, 1, 1, 1];
    let saturated: Vec<f32> = logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect();
    assert!(saturated.iter().all(|&p| p == 1.0), "f32 σ saturates here");
    assert_abs_diff_eq!(roc_auc(&labels(&classes), &saturated).unwrap(), 0.5);
    // Pairs (positive above negative): 18>17.5; 20,24,30 above both negatives; 18 < 19 → 7 of 8.
    let score = evaluate(Metric::RocAuc, &logits, &classes.map(f32::from), 1).unwrap();
    assert_abs_diff_eq!(score.value, 7.0 / 8.0, epsilon = 1e-12);
}
