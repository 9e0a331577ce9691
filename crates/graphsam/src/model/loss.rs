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
