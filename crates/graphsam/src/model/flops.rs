//! Floating-point work of one training pass, counted from the shapes a batch
//! actually runs (not estimated from the parameter count), so `graphsam
//! bench` can say how close a step comes to the hardware's peak.
//!
//! Only matrix products are counted, at 2 FLOPs per multiply-add: they are
//! the arithmetic a CPU's FMA peak measures and well over 90 % of every
//! backbone's work. Element-wise work (activations, norms, softmax) and data
//! movement (gathers, scatters, padding) are left out, so the achieved
//! GFLOP/s is a lower bound of what the hardware did.

/// Which operands of a matrix product receive a gradient in the backward
/// pass. Each one that does costs one more product of the same size there
/// (dA = dC·Bᵀ, dB = Aᵀ·dC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grads {
    /// Both operands depend on trained parameters.
    Both,
    /// Only the left operand (the right one is data, e.g. bond features).
    Left,
    /// Only the right operand (the left one is data, e.g. atom features).
    Right,
}

impl Grads {
    fn count(self) -> f64 {
        match self {
            Grads::Both => 2.0,
            Grads::Left | Grads::Right => 1.0,
        }
    }
}

/// FLOPs of one forward pass and of the backward pass that follows it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassFlops {
    /// Forward pass.
    pub forward: f64,
    /// Backward pass (gradients of every trained parameter).
    pub backward: f64,
}

impl PassFlops {
    /// Adds `batch` products of an (m × k) by a (k × n) matrix.
    pub fn matmul(&mut self, batch: usize, m: usize, k: usize, n: usize, grads: Grads) {
        let product = 2.0 * batch as f64 * m as f64 * k as f64 * n as f64;
        self.forward += product;
        self.backward += product * grads.count();
    }

    /// Forward plus backward.
    pub fn total(&self) -> f64 {
        self.forward + self.backward
    }
}

impl std::ops::AddAssign for PassFlops {
    fn add_assign(&mut self, other: Self) {
        self.forward += other.forward;
        self.backward += other.backward;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_costs_two_flops_per_multiply_add_and_one_product_per_gradient() {
        let mut flops = PassFlops::default();
        flops.matmul(3, 4, 5, 6, Grads::Both);
        assert_eq!(flops.forward, 720.0);
        assert_eq!(flops.backward, 1440.0);
        flops.matmul(1, 2, 2, 2, Grads::Right);
        assert_eq!(flops.forward, 736.0);
        assert_eq!(flops.backward, 1456.0);
        assert_eq!(flops.total(), 2192.0);
    }
}
