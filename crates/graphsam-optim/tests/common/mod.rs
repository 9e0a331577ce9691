//! Small deterministic models and closures shared by the integration tests.
#![allow(dead_code)]

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

/// The autodiff CPU device the tests run on (burn's flex backend, a
/// dev-dependency feature).
pub fn device() -> Device {
    Device::flex().autodiff()
}

/// A model that is just a parameter vector w, for quadratic losses.
#[derive(Module, Debug)]
pub struct Point {
    pub w: Param<Tensor<1>>,
}

impl Point {
    pub fn new(values: &[f32], device: &Device) -> Self {
        Self {
            w: Param::from_data(TensorData::new(values.to_vec(), [values.len()]), device),
        }
    }

    pub fn values(&self) -> Vec<f32> {
        self.w.val().into_data().try_to_vec::<f32>().unwrap()
    }
}

/// L(w) = ½ wᵀAw for a symmetric positive definite A (row-major, n×n).
#[derive(Clone)]
pub struct Quadratic {
    pub a: Vec<f64>,
    pub n: usize,
}

impl Quadratic {
    pub fn new(a: Vec<f64>) -> Self {
        let n = (a.len() as f64).sqrt() as usize;
        Self { a, n }
    }

    /// Aw on the host, in f64.
    pub fn grad(&self, w: &[f64]) -> Vec<f64> {
        (0..self.n)
            .map(|i| (0..self.n).map(|j| self.a[i * self.n + j] * w[j]).sum())
            .collect()
    }

    /// Loss and gradients of `model`, through burn autodiff.
    pub fn loss_and_grads(&self, model: &Point) -> (f32, GradientsParams) {
        let device = model.w.val().device();
        let a = Tensor::<2>::from_data(
            TensorData::new(
                self.a.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                [self.n, self.n],
            ),
            &device,
        );
        let w = model.w.val();
        let aw = a.matmul(w.clone().reshape([self.n, 1])).reshape([self.n]);
        let loss = (w * aw).sum().mul_scalar(0.5);
        let value = loss.clone().into_scalar::<f32>();
        (value, GradientsParams::from_grads(loss.backward(), model))
    }
}

/// A model of two parameter tensors of different sizes and ranks: a (3) and
/// b (1×2), so global and per-tensor norms differ.
#[derive(Module, Debug)]
pub struct Pair {
    pub a: Param<Tensor<1>>,
    pub b: Param<Tensor<2>>,
}

impl Pair {
    pub fn new(a: &[f32; 3], b: &[f32; 2], device: &Device) -> Self {
        Self {
            a: Param::from_data(TensorData::new(a.to_vec(), [3]), device),
            b: Param::from_data(TensorData::new(b.to_vec(), [1, 2]), device),
        }
    }

    /// z = (a, b) flattened, as f32.
    pub fn values(&self) -> Vec<f32> {
        let mut z = self.a.val().into_data().try_to_vec::<f32>().unwrap();
        z.extend(self.b.val().into_data().try_to_vec::<f32>().unwrap());
        z
    }

    /// z as f64.
    pub fn z(&self) -> Vec<f64> {
        to_f64(&self.values())
    }
}

/// L(z) = ½ zᵀQz over z = (a, b) ∈ R⁵ for a symmetric positive definite Q.
pub struct PairQuadratic {
    pub q: Vec<f64>,
}

impl PairQuadratic {
    /// Q with a well-conditioned a-block and a b-block ~1e-6, so ∇_b is
    /// ~1e-6: Adam's ε (1e-8) moves b's update by ~1%, and b's share of the
    /// global norm is negligible while its own norm is not.
    pub fn new() -> Self {
        #[rustfmt::skip]
        let q = vec![
            3.0,  0.5,  0.2,  1e-7,   0.0,
            0.5,  2.0,  0.3,  0.0,    2e-7,
            0.2,  0.3,  1.0,  0.0,    0.0,
            1e-7, 0.0,  0.0,  2e-6,   0.5e-6,
            0.0,  2e-7, 0.0,  0.5e-6, 1e-6,
        ];
        Self { q }
    }

    /// Qz on the host, in f64.
    pub fn grad(&self, z: &[f64]) -> Vec<f64> {
        (0..5)
            .map(|i| (0..5).map(|j| self.q[i * 5 + j] * z[j]).sum())
            .collect()
    }

    /// ½ zᵀQz on the host, in f64.
    pub fn loss(&self, z: &[f64]) -> f64 {
        0.5 * z.iter().zip(self.grad(z)).map(|(a, b)| a * b).sum::<f64>()
    }

    /// Loss and gradients of `model`, through burn autodiff.
    pub fn loss_and_grads(&self, model: &Pair) -> (f32, GradientsParams) {
        let device = model.a.val().device();
        let q = Tensor::<2>::from_data(
            TensorData::new(self.q.iter().map(|&x| x as f32).collect::<Vec<_>>(), [5, 5]),
            &device,
        );
        let z = Tensor::cat(vec![model.a.val(), model.b.val().reshape([2])], 0);
        let qz = q.matmul(z.clone().reshape([5, 1])).reshape([5]);
        let loss = (z * qz).sum().mul_scalar(0.5);
        let value = loss.clone().into_scalar::<f32>();
        (value, GradientsParams::from_grads(loss.backward(), model))
    }
}

/// The a (first 3) and b (last 2) parts of a z vector.
pub fn split(z: &[f64]) -> (&[f64], &[f64]) {
    z.split_at(3)
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub fn assert_close(actual: &[f32], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (f64::from(*a) - e).abs() <= tol * (1.0 + e.abs()),
            "{what}[{i}]: got {a}, expected {e}"
        );
    }
}

/// Deterministic pseudo-random numbers in [-1, 1) (a 64-bit LCG).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// A two-layer perceptron with tanh, initialised deterministically.
#[derive(Module, Debug)]
pub struct Mlp {
    pub w1: Param<Tensor<2>>,
    pub b1: Param<Tensor<1>>,
    pub w2: Param<Tensor<2>>,
    pub b2: Param<Tensor<1>>,
}

impl Mlp {
    pub fn new(inputs: usize, hidden: usize, seed: u64, device: &Device) -> Self {
        let mut rng = Lcg(seed);
        let s1 = 1.0 / (inputs as f32).sqrt();
        let s2 = 1.0 / (hidden as f32).sqrt();
        Self {
            w1: Param::from_data(
                TensorData::new(rng.vec(inputs * hidden, s1), [inputs, hidden]),
                device,
            ),
            b1: Param::from_data(TensorData::new(vec![0.0f32; hidden], [hidden]), device),
            w2: Param::from_data(TensorData::new(rng.vec(hidden, s2), [hidden, 1]), device),
            b2: Param::from_data(TensorData::new(vec![0.0f32; 1], [1]), device),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = (x.matmul(self.w1.val()) + self.b1.val().unsqueeze::<2>()).tanh();
        h.matmul(self.w2.val()) + self.b2.val().unsqueeze::<2>()
    }

    /// All parameters flattened, for exact comparisons.
    pub fn flat(&self) -> Vec<f32> {
        let mut out = Vec::new();
        for t in [
            self.w1.val().reshape([-1]),
            self.b1.val(),
            self.w2.val().reshape([-1]),
            self.b2.val(),
        ] {
            out.extend(t.into_data().try_to_vec::<f32>().unwrap());
        }
        out
    }
}

/// A fixed synthetic regression task: y = sin(x·u) + 0.5 x₀ with 4 inputs.
pub struct Regression {
    pub x: Tensor<2>,
    pub y: Tensor<2>,
}

impl Regression {
    pub fn new(samples: usize, device: &Device) -> Self {
        let mut rng = Lcg(7);
        let inputs = 4;
        let xs = rng.vec(samples * inputs, 1.0);
        let u = [0.9f32, -0.6, 0.4, 0.8];
        let ys: Vec<f32> = xs
            .chunks(inputs)
            .map(|r| (r.iter().zip(u).map(|(a, b)| a * b).sum::<f32>()).sin() + 0.5 * r[0])
            .collect();
        Self {
            x: Tensor::from_data(TensorData::new(xs, [samples, inputs]), device),
            y: Tensor::from_data(TensorData::new(ys, [samples, 1]), device),
        }
    }

    /// The rows of mini-batch `b` of size `size` (wrapping around).
    pub fn batch(&self, b: usize, size: usize) -> (Tensor<2>, Tensor<2>) {
        let n = self.x.dims()[0];
        let start = (b * size) % n;
        let end = (start + size).min(n);
        (
            self.x.clone().slice(start..end),
            self.y.clone().slice(start..end),
        )
    }

    pub fn mse(model: &Mlp, x: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
        (model.forward(x) - y).square().mean()
    }

    pub fn loss_and_grads(&self, model: &Mlp, b: usize, size: usize) -> (f32, GradientsParams) {
        let (x, y) = self.batch(b, size);
        let loss = Self::mse(model, x, y);
        let value = loss.clone().into_scalar::<f32>();
        (value, GradientsParams::from_grads(loss.backward(), model))
    }

    pub fn full_loss(&self, model: &Mlp) -> f32 {
        Self::mse(model, self.x.clone(), self.y.clone()).into_scalar::<f32>()
    }
}
