//! Cost of one optimizer step, per optimizer, on one transformer-shaped model
//! and batch, interleaved in one process; prints times and ratios to Adam.
//!
//! cargo bench -p graphsam-optim --bench step_cost --profile dev [-- BACKEND EPOCHS STEPS]
//!
//! (`--profile dev` reuses the dependency build: burn is optimised at level 3
//! there too, and the hot path is all burn.) BACKEND is `flex` (default)
//! or `ndarray`.

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Distribution, Tensor};
use graphsam_optim::{OptimizerConfig, ParamVector, SharpnessOptimizer};

/// Pre-norm transformer encoder block.
#[derive(Module, Debug)]
struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    out: Linear,
    norm2: LayerNorm,
    ff1: Linear,
    ff2: Linear,
    heads: usize,
}

impl Block {
    fn new(d: usize, heads: usize, device: &burn::tensor::Device) -> Self {
        Self {
            norm1: LayerNormConfig::new(d).init(device),
            qkv: LinearConfig::new(d, 3 * d).init(device),
            out: LinearConfig::new(d, d).init(device),
            norm2: LayerNormConfig::new(d).init(device),
            ff1: LinearConfig::new(d, 4 * d).init(device),
            ff2: LinearConfig::new(4 * d, d).init(device),
            heads,
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let h = self.heads;
        let qkv = self.qkv.forward(self.norm1.forward(x.clone()));
        let split = |i: usize| {
            qkv.clone()
                .slice([0..b, 0..l, i * d..(i + 1) * d])
                .reshape([b, l, h, d / h])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar(((d / h) as f32).sqrt());
        let attended = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, l, d]);
        let x = x + self.out.forward(attended);
        let ff = self
            .ff2
            .forward(gelu(self.ff1.forward(self.norm2.forward(x.clone()))));
        x + ff
    }
}

#[derive(Module, Debug)]
struct Encoder {
    embed: Linear,
    blocks: Vec<Block>,
    head: Linear,
}

impl Encoder {
    fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let mut h = self.embed.forward(x);
        for block in &self.blocks {
            h = block.forward(h);
        }
        let [b, _, d] = h.dims();
        self.head.forward(h.mean_dim(1).reshape([b, d]))
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let backend = args.first().map_or("flex", String::as_str);
    #[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; we measured both.
    let plain = match backend {
        "flex" => Device::flex(),
        "ndarray" => Device::ndarray(),
        other => panic!("unknown backend `{other}` (expected flex or ndarray)"),
    };
    let epochs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let device = plain.autodiff();

    // Molecule-sized: 16 graphs × 24 atoms, 32 input features, width 64, 2 blocks, 4 heads.
    let (batch, atoms, features, width) = (16, 24, 32, 64);
    let model = Encoder {
        embed: LinearConfig::new(features, width).init(&device),
        blocks: (0..2).map(|_| Block::new(width, 4, &device)).collect(),
        head: LinearConfig::new(width, 1).init(&device),
    };
    let x = Tensor::<3>::random([batch, atoms, features], Distribution::Default, &device);
    let y = Tensor::<2>::random([batch, 1], Distribution::Default, &device);
    let grad_fn = |m: &Encoder| {
        let loss = (m.forward(x.clone()) - y.clone()).square().mean();
        let value = loss.clone().into_scalar::<f32>();
        Ok::<_, std::convert::Infallible>((value, GradientsParams::from_grads(loss.backward(), m)))
    };

    let names = ["adam", "sam", "graphsam", "sam-k", "looksam"];
    // Per optimizer: its state, its model, and the step times of each round.
    type Run = (
        SharpnessOptimizer<Encoder>,
        Encoder,
        Vec<Duration>,
        Vec<Duration>,
    );
    let mut runs: Vec<Run> = names
        .iter()
        .map(|n| {
            let opt = n
                .parse::<OptimizerConfig>()
                .unwrap()
                .init::<Encoder>()
                .unwrap();
            (opt, model.clone(), Vec::new(), Vec::new())
        })
        .collect();

    println!(
        "backend {backend}; model {} parameters; batch {batch}×{atoms}; {epochs} epochs × {steps} steps; first epoch is warm-up",
        model.num_params()
    );
    for epoch in 0..epochs {
        for run in runs.iter_mut() {
            run.0.start_epoch(epoch as u64);
        }
        for step in 0..steps {
            // Interleave: every optimizer takes step `step` before any takes the next.
            for (opt, model, all, between) in runs.iter_mut() {
                let start = Instant::now();
                let (next, report) = opt.step(1e-4, model.clone(), grad_fn).unwrap();
                let elapsed = start.elapsed();
                *model = next;
                if epoch > 0 {
                    all.push(elapsed);
                    if report.passes == 1 || (step > 0 && opt.name() == "sam") {
                        between.push(elapsed);
                    }
                }
            }
        }
    }

    let mean =
        |d: &[Duration]| d.iter().map(Duration::as_secs_f64).sum::<f64>() / d.len().max(1) as f64;
    let median = |d: &[Duration]| {
        let mut v: Vec<f64> = d.iter().map(Duration::as_secs_f64).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let adam_mean = mean(&runs[0].2);
    let adam_median = median(&runs[0].2);
    println!(
        "{:<10} {:>10} {:>8} {:>12} {:>8} {:>14}",
        "optimizer", "mean ms", "ratio", "median ms", "ratio", "passes/step"
    );
    for (opt, _, all, _) in &runs {
        let c = opt.counters();
        println!(
            "{:<10} {:>10.2} {:>8.2} {:>12.2} {:>8.2} {:>14.2}",
            opt.name(),
            mean(all) * 1e3,
            mean(all) / adam_mean,
            median(all) * 1e3,
            median(all) / adam_median,
            c.forward as f64 / c.steps as f64
        );
    }
    let graphsam_between = median(&runs[2].3);
    println!(
        "graphsam one-pass (non-anchor) step: median {:.2} ms = {:.3}× Adam",
        graphsam_between * 1e3,
        graphsam_between / adam_median
    );

    // The GraphSAM bookkeeping alone: EMA of g_h, two norms, ε, and the perturbed clone.
    let (_, mut grads) = grad_fn(&model).unwrap();
    let g = ParamVector::from_gradients(&model, &mut grads);
    let mut g_h = g.clone();
    let reps = 50;
    let start = Instant::now();
    for _ in 0..reps {
        let norm_s = g.norm();
        g_h = g_h.linear_combination(0.99, &g.scale(1.0 / (norm_s + 1e-12)), 0.01);
        let eps = g_h.scale(0.05 / (g_h.norm() + 1e-12));
        let _shifted = eps.perturb(&model);
    }
    let overhead = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "GraphSAM bookkeeping (EMA + 2 norms + ε + perturbed clone): {:.3} ms = {:.1}% of an Adam step",
        overhead * 1e3,
        100.0 * overhead / adam_median
    );
}
