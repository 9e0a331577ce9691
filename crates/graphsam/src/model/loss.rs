//! Training losses shared by every backbone. Missing labels are masked out:
//! `mask` holds 1 where a target is observed and 0 where it is missing, and
//! every loss is a mean over observed labels only.

use burn::tensor::{Tensor, activation::log_sigmoid};

/// Sum of `values * mask` divided by the number of observed labels (at least 1,
/// so a batch with no observed label yields 0 instead of NaN).
pub fn masked_mean(values: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
    let observed = mask.clone().sum().clamp_min(1.0);
    (values * mask).sum() / observed
}

/// Binary cross-entropy on logits, averaged over observed labels. Missing
/// targets may hold any finite placeholder (the batcher writes 0).
pub fn masked_bce_with_logits(logits: Tensor<2>, targets: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
    // -[y log σ(x) + (1-y) log σ(-x)], in the numerically stable log-sigmoid form.
    let positive = log_sigmoid(logits.clone()) * targets.clone();
    let negative = log_sigmoid(logits.neg()) * (targets.neg() + 1.0);
    masked_mean((positive + negative).neg(), mask)
}

/// Mean squared error over observed labels.
pub fn masked_mse(predictions: Tensor<2>, targets: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
    let diff = predictions - targets;
    masked_mean(diff.clone() * diff, mask)
}

/// Root of [`masked_mse`], the regression training loss of CoMPT. A tiny
/// floor keeps the gradient of the square root finite at a perfect fit.
pub fn masked_rmse(predictions: Tensor<2>, targets: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
    (masked_mse(predictions, targets, mask) + 1e-12).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[allow(deprecated)] // ndarray is the project's default CPU backend
    fn device() -> Device {
        Device::ndarray()
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()[0]
    }

    #[test]
    fn bce_with_logits_averages_observed_labels_only() {
        let d = device();
        let logits = Tensor::<2>::from_floats([[0.0, 2.0], [-1.0, 3.0]], &d);
        let targets = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &d);
        let mask = Tensor::<2>::from_floats([[1.0, 1.0], [1.0, 0.0]], &d);
        // ln 2, ln(1+e²), ln(1+e⁻¹); the fourth label is missing.
        let want = (2f64.ln() + (1.0 + 2f64.exp()).ln() + (1.0 + (-1f64).exp()).ln()) / 3.0;
        let got = scalar(masked_bce_with_logits(logits, targets, mask));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn bce_is_finite_for_extreme_logits() {
        let d = device();
        let logits = Tensor::<2>::from_floats([[100.0, -100.0]], &d);
        let targets = Tensor::<2>::from_floats([[0.0, 1.0]], &d);
        let got = scalar(masked_bce_with_logits(
            logits,
            targets,
            Tensor::ones([1, 2], &d),
        ));
        assert!((got - 100.0).abs() < 1e-3, "{got}");
    }

    #[test]
    fn mse_and_rmse_ignore_missing_labels() {
        let d = device();
        let predictions = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &d);
        let targets = Tensor::<2>::from_floats([[0.0, 2.0], [1.0, 0.0]], &d);
        let mask = Tensor::<2>::from_floats([[1.0, 1.0], [1.0, 0.0]], &d);
        let mse = scalar(masked_mse(
            predictions.clone(),
            targets.clone(),
            mask.clone(),
        ));
        assert!((mse - 5.0 / 3.0).abs() < 1e-6, "{mse}");
        let rmse = scalar(masked_rmse(predictions, targets, mask));
        assert!((rmse - (5.0f64 / 3.0).sqrt()).abs() < 1e-6, "{rmse}");
    }

    #[test]
    fn a_batch_without_labels_has_zero_loss() {
        let d = device();
        let x = Tensor::<2>::from_floats([[0.3, -2.0]], &d);
        let none = Tensor::<2>::zeros([1, 2], &d);
        assert_eq!(
            scalar(masked_bce_with_logits(x.clone(), x.clone(), none.clone())),
            0.0
        );
        assert_eq!(scalar(masked_mse(x.clone(), x.clone() * 2.0, none)), 0.0);
    }
}
