//! The optimizers' math against closed forms on L(w) = ½ wᵀAw, and on a
//! two-tensor model (a ∈ R³, b ∈ R^{1×2}) where global and per-tensor norms
//! differ; every expected value is computed here by hand in f64.

mod common;

use std::cell::RefCell;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use common::{Pair, PairQuadratic, Point, Quadratic, assert_close, device, norm, split, to_f64};
use graphsam_optim::{
    AeSamConfig, AnchorPolicy, BaseOptimizerConfig, GraphSamConfig, LookSamConfig, OptimizerConfig,
    RhoDecay, RstConfig, RstSchedule, SamConfig, SamKConfig, SgdConfig, SharpnessOptimizer,
    StepError, StepWarning, rst_draw,
};

const A: [f64; 9] = [3.0, 0.5, 0.2, 0.5, 2.0, 0.3, 0.2, 0.3, 1.0];
const W0: [f32; 3] = [0.8, -0.5, 1.2];

fn sgd() -> BaseOptimizerConfig {
    BaseOptimizerConfig::Sgd(SgdConfig::default())
}

/// Runs one step, recording the weights each closure call saw.
fn step_recording(
    opt: &mut SharpnessOptimizer<Point>,
    q: &Quadratic,
    model: Point,
    lr: f64,
) -> (Point, Vec<Vec<f32>>) {
    let seen = RefCell::new(Vec::new());
    let (model, _) = opt
        .step(lr, model, |m: &Point| {
            seen.borrow_mut().push(m.values());
            Ok::<_, std::convert::Infallible>(q.loss_and_grads(m))
        })
        .unwrap();
    (model, seen.into_inner())
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn scaled(a: &[f64], s: f64) -> Vec<f64> {
    a.iter().map(|x| x * s).collect()
}

#[test]
fn sam_perturbation_and_sgd_step_match_closed_form() {
    let q = Quadratic::new(A.to_vec());
    let (rho, lr) = (0.1, 0.05);
    let mut opt = OptimizerConfig::Sam(SamConfig {
        rho,
        adaptive: false,
        base: sgd(),
    })
    .init::<Point>()
    .unwrap();
    let (model, seen) = step_recording(&mut opt, &q, Point::new(&W0, &device()), lr);

    let w = to_f64(&W0);
    let g = q.grad(&w);
    let eps = scaled(&g, rho / norm(&g));
    let w_adv = add(&w, &eps);
    let g_s = q.grad(&w_adv);
    let expected = add(&w, &scaled(&g_s, -lr));

    assert_eq!(seen.len(), 2, "SAM evaluates at w and at w+ε");
    assert_close(&seen[0], &w, 1e-7, "first evaluation at w");
    assert_close(&seen[1], &w_adv, 1e-6, "second evaluation at w + ρ Aw/‖Aw‖");
    assert_close(&model.values(), &expected, 1e-6, "w − lr ∇L(w+ε)");
    assert_eq!(opt.counters().forward, 2);
}

#[test]
fn sam_closed_form_holds_on_every_cpu_backend() {
    let q = Quadratic::new(A.to_vec());
    let (rho, lr) = (0.1, 0.05);
    let w = to_f64(&W0);
    let g = q.grad(&w);
    let g_s = q.grad(&add(&w, &scaled(&g, rho / norm(&g))));
    let expected = add(&w, &scaled(&g_s, -lr));
    #[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; both are tested.
    let backends = [("flex", Device::flex()), ("ndarray", Device::ndarray())];
    for (name, backend) in backends {
        let mut opt = SamConfig {
            rho,
            adaptive: false,
            base: sgd(),
        }
        .init::<Point>()
        .unwrap();
        let model = Point::new(&W0, &backend.autodiff());
        let (model, _) = step_recording(&mut opt, &q, model, lr);
        assert_close(&model.values(), &expected, 1e-6, name);
    }
}

#[test]
fn asam_perturbation_matches_its_formula() {
    let q = Quadratic::new(A.to_vec());
    let rho = 0.5;
    let mut opt = OptimizerConfig::Sam(SamConfig {
        rho,
        adaptive: true,
        base: sgd(),
    })
    .init::<Point>()
    .unwrap();
    let (_, seen) = step_recording(&mut opt, &q, Point::new(&W0, &device()), 0.01);

    let w = to_f64(&W0);
    let g = q.grad(&w);
    let t: Vec<f64> = w.iter().map(|x| x.abs()).collect();
    let tg: Vec<f64> = t.iter().zip(&g).map(|(a, b)| a * b).collect();
    let t2g: Vec<f64> = t.iter().zip(&tg).map(|(a, b)| a * b).collect();
    let eps = scaled(&t2g, rho / norm(&tg));
    assert_close(&seen[1], &add(&w, &eps), 1e-6, "w + ρ T²g/‖Tg‖");
}

#[test]
fn sam_with_adam_base_matches_first_adam_step() {
    // Adam's first step is lr · m̂/(√v̂ + ε) = lr · g/(|g| + ε) elementwise.
    let q = Quadratic::new(A.to_vec());
    let (rho, lr) = (0.1, 0.01);
    let mut opt = SamConfig {
        rho,
        ..SamConfig::default()
    }
    .init::<Point>()
    .unwrap();
    let (model, _) = step_recording(&mut opt, &q, Point::new(&W0, &device()), lr);
    let w = to_f64(&W0);
    let g = q.grad(&w);
    let g_s = q.grad(&add(&w, &scaled(&g, rho / norm(&g))));
    let expected: Vec<f64> = w
        .iter()
        .zip(&g_s)
        .map(|(w, g)| w - lr * g / (g.abs() + 1e-8))
        .collect();
    assert_close(&model.values(), &expected, 1e-6, "SAM + Adam first step");
}

#[test]
fn graphsam_anchor_step_equals_sam_step_exactly() {
    let q = Quadratic::new(A.to_vec());
    let device = device();
    let start = Point::new(&W0, &device);
    let mut sam = SamConfig::default().init::<Point>().unwrap();
    let mut graphsam = GraphSamConfig::default().init::<Point>().unwrap();
    graphsam.start_epoch(0);
    let (by_sam, _) = step_recording(&mut sam, &q, start.clone(), 1e-3);
    let (by_graphsam, seen) = step_recording(&mut graphsam, &q, start, 1e-3);
    assert_eq!(seen.len(), 2, "an anchor step costs two passes");
    assert_eq!(
        by_sam.values(),
        by_graphsam.values(),
        "bit-identical weights"
    );
}

#[test]
fn graphsam_g_h_follows_the_ema_and_drives_the_perturbation() {
    let q = Quadratic::new(A.to_vec());
    let (rho, beta, lr) = (0.2, 0.9, 0.05);
    let config = GraphSamConfig {
        rho,
        beta,
        base: sgd(),
        ..GraphSamConfig::default()
    };
    let mut opt = config.init::<Point>().unwrap();
    opt.start_epoch(0);
    let model = Point::new(&W0, &device());
    let id = model.w.id;

    // Anchor: g_h = ∇L(w0) exactly.
    let (model, _) = step_recording(&mut opt, &q, model, lr);
    let g0 = q.grad(&to_f64(&W0));
    assert_close(
        &opt.perturbation_estimate().unwrap().values(id).unwrap(),
        &g0,
        1e-6,
        "anchor g_h",
    );
    let mut g_h = g0;
    let mut g_s = to_f64(&opt.last_update_gradient().unwrap().values(id).unwrap());

    let mut model = model;
    for step in 1..4 {
        let w = to_f64(&model.values());
        let expected_g_h = add(
            &scaled(&g_h, beta),
            &scaled(&g_s, (1.0 - beta) / norm(&g_s)),
        );
        let (next, seen) = step_recording(&mut opt, &q, model, lr);
        assert_eq!(seen.len(), 1, "step {step}: one pass between anchors");
        let got = opt.perturbation_estimate().unwrap().values(id).unwrap();
        assert_close(&got, &expected_g_h, 1e-6, "g_h ← β g_h + (1−β) g_s/‖g_s‖");
        // The single evaluation is at w + ρ g_h/‖g_h‖ and the update uses it.
        let w_adv = add(&w, &scaled(&expected_g_h, rho / norm(&expected_g_h)));
        assert_close(&seen[0], &w_adv, 1e-6, "evaluated at w + ρ g_h/‖g_h‖");
        let expected_w = add(&w, &scaled(&q.grad(&w_adv), -lr));
        assert_close(&next.values(), &expected_w, 1e-6, "w − lr g_s");
        g_h = expected_g_h;
        g_s = to_f64(&opt.last_update_gradient().unwrap().values(id).unwrap());
        assert_close(
            &opt.last_update_gradient().unwrap().values(id).unwrap(),
            &q.grad(&w_adv),
            1e-5,
            "g_s stored",
        );
        model = next;
    }
}

#[test]
fn graphsam_per_tensor_options_normalise_and_clip() {
    let q = Quadratic::new(A.to_vec());
    let (rho, beta, radius) = (0.3, 0.5, 0.01);
    let config = GraphSamConfig {
        rho,
        beta,
        radius: Some(radius),
        normalize_per_tensor: true,
        base: sgd(),
        ..GraphSamConfig::default()
    };
    let mut opt = config.init::<Point>().unwrap();
    opt.start_epoch(0);
    let (model, seen) = step_recording(&mut opt, &q, Point::new(&W0, &device()), 0.01);
    // ρ g/‖g‖ has norm 0.3 > radius: clipped to the radius (single tensor).
    let w = to_f64(&W0);
    let g = q.grad(&w);
    assert_close(
        &seen[1],
        &add(&w, &scaled(&g, radius / norm(&g))),
        1e-6,
        "ε clipped to radius",
    );
    let _ = step_recording(&mut opt, &q, model, 0.01);
}

#[test]
fn rho_follows_step_lr_and_the_compounding_option_its_formula() {
    let step = GraphSamConfig {
        rho: 0.05,
        gamma: 0.5,
        rho_period: 2,
        ..GraphSamConfig::default()
    };
    let mut opt = step.init::<Point>().unwrap();
    for e in 0..7u64 {
        opt.start_epoch(e);
        let expected = 0.05 * 0.5f64.powi((e / 2) as i32);
        assert!(
            (opt.rho().unwrap() - expected).abs() < 1e-15,
            "epoch {e}: StepLR ρ"
        );
    }
    let compounding = GraphSamConfig {
        rho: 0.05,
        gamma: 0.5,
        rho_period: 1,
        rho_decay: RhoDecay::Compounding,
        ..GraphSamConfig::default()
    };
    let mut opt = compounding.init::<Point>().unwrap();
    for e in 0..6u64 {
        opt.start_epoch(e);
        // ρ_e = ρ₀ γ^(m(m+1)/2), m = ⌊e/λ⌋.
        let expected = 0.05 * 0.5f64.powf((e * (e + 1) / 2) as f64);
        assert!(
            (opt.rho().unwrap() - expected).abs() < 1e-15 * (1.0 + expected),
            "epoch {e}: compounding ρ"
        );
    }
    // Calling start_epoch twice for the same epoch does not decay twice.
    let before = opt.rho();
    opt.start_epoch(5);
    assert_eq!(opt.rho(), before);
    assert_eq!(
        SamConfig::default().init::<Point>().unwrap().rho(),
        Some(0.05)
    );
    assert_eq!(
        OptimizerConfig::Adam(Default::default())
            .init::<Point>()
            .unwrap()
            .rho(),
        None
    );
}

fn passes_for_epoch(config: OptimizerConfig, steps: usize) -> u64 {
    let q = Quadratic::new(A.to_vec());
    let mut opt = config.init::<Point>().unwrap();
    let mut model = Point::new(&W0, &device());
    opt.start_epoch(0);
    for _ in 0..steps {
        model = step_recording(&mut opt, &q, model, 1e-3).0;
    }
    let c = opt.counters();
    assert_eq!(c.forward, c.backward);
    assert_eq!(c.steps, steps as u64);
    c.forward
}

#[test]
fn pass_counts_over_an_epoch() {
    let s = 7;
    assert_eq!(passes_for_epoch("adam".parse().unwrap(), s), 7, "Adam: S");
    assert_eq!(passes_for_epoch("sam".parse().unwrap(), s), 14, "SAM: 2S");
    assert_eq!(
        passes_for_epoch("graphsam".parse().unwrap(), s),
        8,
        "GraphSAM: S+1"
    );
    let sam_k = OptimizerConfig::SamK(SamKConfig {
        k: 3,
        ..SamKConfig::default()
    });
    assert_eq!(passes_for_epoch(sam_k, s), 10, "SAM-3: S + ⌈S/3⌉");
    let look = OptimizerConfig::LookSam(LookSamConfig {
        k: 3,
        ..LookSamConfig::default()
    });
    assert_eq!(passes_for_epoch(look, s), 10, "LookSAM-3: S + ⌈S/3⌉");
    let every = OptimizerConfig::GraphSam(GraphSamConfig {
        anchor: AnchorPolicy::Steps { steps: 2 },
        ..GraphSamConfig::default()
    });
    assert_eq!(
        passes_for_epoch(every, s),
        11,
        "GraphSAM anchored every 2 steps: S + ⌈S/2⌉"
    );
    let rst = RstConfig {
        seed: 5,
        ..RstConfig::default()
    };
    let sam_draws = (0..s as u64).filter(|&t| rst_draw(5, t) < 0.5).count() as u64;
    assert_eq!(
        passes_for_epoch(rst.into(), s),
        s as u64 + sam_draws,
        "RST: S + #SAM draws"
    );
}

#[test]
fn graphsam_anchors_again_at_each_epoch_start() {
    let q = Quadratic::new(A.to_vec());
    let mut opt = GraphSamConfig::default().init::<Point>().unwrap();
    let mut model = Point::new(&W0, &device());
    for epoch in 0..3 {
        opt.start_epoch(epoch);
        for _ in 0..4 {
            model = step_recording(&mut opt, &q, model, 1e-3).0;
        }
    }
    assert_eq!(opt.counters().forward, 3 * 5);
}

#[test]
fn sam_k_takes_sam_steps_every_k_and_base_steps_between() {
    let q = Quadratic::new(A.to_vec());
    let lr = 0.05;
    let mut opt = SamKConfig {
        rho: 0.1,
        k: 2,
        adaptive: false,
        base: sgd(),
    }
    .init::<Point>()
    .unwrap();
    let model = Point::new(&W0, &device());
    let (model, seen) = step_recording(&mut opt, &q, model, lr);
    assert_eq!(seen.len(), 2, "step 0 is a SAM step");
    let w = to_f64(&model.values());
    let (model, seen) = step_recording(&mut opt, &q, model, lr);
    assert_eq!(seen.len(), 1, "step 1 is a plain step");
    assert_close(
        &model.values(),
        &add(&w, &scaled(&q.grad(&w), -lr)),
        1e-6,
        "plain SGD step",
    );
}

#[test]
fn looksam_reuses_the_orthogonal_component() {
    let q = Quadratic::new(A.to_vec());
    let (rho, alpha, lr) = (0.3, 0.7, 0.05);
    let mut opt = LookSamConfig {
        rho,
        k: 3,
        alpha,
        base: sgd(),
    }
    .init::<Point>()
    .unwrap();
    let model = Point::new(&W0, &device());
    let id = model.w.id;

    let (model, seen) = step_recording(&mut opt, &q, model, lr);
    assert_eq!(seen.len(), 2);
    let w = to_f64(&W0);
    let g = q.grad(&w);
    let g_s = q.grad(&add(&w, &scaled(&g, rho / norm(&g))));
    let dot: f64 = g.iter().zip(&g_s).map(|(a, b)| a * b).sum();
    let g_v = add(&g_s, &scaled(&g, -dot / norm(&g).powi(2)));
    let got = opt.orthogonal_component().unwrap().values(id).unwrap();
    assert_close(&got, &g_v, 1e-5, "g_v = g_s − proj_g g_s");
    let ortho: f64 = to_f64(&got).iter().zip(&g).map(|(a, b)| a * b).sum();
    assert!(ortho.abs() < 1e-5, "g_v ⟂ g, got {ortho}");

    let w1 = to_f64(&model.values());
    let (model, seen) = step_recording(&mut opt, &q, model, lr);
    assert_eq!(seen.len(), 1);
    let g1 = q.grad(&w1);
    let update = add(&g1, &scaled(&g_v, alpha * norm(&g1) / norm(&g_v)));
    assert_close(
        &model.values(),
        &add(&w1, &scaled(&update, -lr)),
        1e-5,
        "g + α‖g‖/‖g_v‖ g_v",
    );
}

#[test]
fn zero_gradient_gives_no_perturbation_no_nan_and_a_counted_warning() {
    let q = Quadratic::new(A.to_vec());
    for name in ["sam", "graphsam", "sam-k", "looksam"] {
        let mut opt = name
            .parse::<OptimizerConfig>()
            .unwrap()
            .init::<Point>()
            .unwrap();
        opt.start_epoch(0);
        // At w = 0 the gradient Aw is exactly zero.
        let model = Point::new(&[0.0, 0.0, 0.0], &device());
        let seen = RefCell::new(Vec::new());
        let (model, report) = opt
            .step(1e-3, model, |m: &Point| {
                seen.borrow_mut().push(m.values());
                Ok::<_, std::convert::Infallible>(q.loss_and_grads(m))
            })
            .unwrap();
        assert_eq!(model.values(), vec![0.0; 3], "{name}: weights unchanged");
        assert!(
            seen.borrow().iter().flatten().all(|v| *v == 0.0),
            "{name}: never perturbed"
        );
        assert_eq!(
            report.passes, 1,
            "{name}: no second pass without a perturbation"
        );
        assert!(
            matches!(
                report.warnings.as_slice(),
                [StepWarning::NoPerturbation { step: 0, .. }]
            ),
            "{name}: {:?}",
            report.warnings
        );
        assert_eq!(opt.counters().perturbations_skipped, 1, "{name}");
        assert!(report.loss.is_finite());
    }
}

#[test]
fn non_finite_gradient_skips_the_update() {
    let q = Quadratic::new(A.to_vec());
    let mut opt = GraphSamConfig::default().init::<Point>().unwrap();
    opt.start_epoch(0);
    let model = Point::new(&W0, &device());
    let (model, report) = opt
        .step(1e-3, model, |m: &Point| {
            // A finite loss with a NaN gradient: the gradient of √w at w < 0.
            let (loss, _) = q.loss_and_grads(m);
            let bad = m.w.val().sqrt().sum();
            Ok::<_, std::convert::Infallible>((
                loss,
                burn::optim::GradientsParams::from_grads(bad.backward(), m),
            ))
        })
        .unwrap();
    assert_eq!(model.values(), W0.to_vec(), "weights unchanged");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| matches!(w, StepWarning::UpdateSkipped { step: 0 }))
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| matches!(w, StepWarning::NoPerturbation { .. }))
    );
    assert_eq!(opt.counters().updates_skipped, 1);
    // The next step is healthy again.
    let (model, report) = opt
        .step(1e-3, model, |m: &Point| {
            Ok::<_, std::convert::Infallible>(q.loss_and_grads(m))
        })
        .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(model.values().iter().all(|v| v.is_finite()));
}

#[test]
fn non_finite_loss_is_an_error_with_the_step_number() {
    let q = Quadratic::new(A.to_vec());
    let mut opt = SamConfig::default().init::<Point>().unwrap();
    let mut model = Point::new(&W0, &device());
    for _ in 0..2 {
        model = step_recording(&mut opt, &q, model, 1e-3).0;
    }
    let err = opt
        .step(1e-3, model, |m: &Point| {
            let (_, grads) = q.loss_and_grads(m);
            Ok::<_, std::convert::Infallible>((f32::NAN, grads))
        })
        .unwrap_err();
    match &err.error {
        StepError::NonFiniteLoss { step, .. } => assert_eq!(*step, 2),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("step 2"), "{err}");
    assert_eq!(
        opt.global_step(),
        2,
        "the failed step is not counted as taken"
    );
}

#[test]
fn closure_errors_pass_through() {
    let mut opt = SamConfig::default().init::<Point>().unwrap();
    let model = Point::new(&W0, &device());
    let err = opt
        .step(1e-3, model, |_: &Point| {
            Err::<(f32, burn::optim::GradientsParams), _>("batch 3 is empty")
        })
        .unwrap_err();
    assert!(matches!(err.error, StepError::Closure("batch 3 is empty")));
    assert_eq!(opt.counters().forward, 0);
}

// ---------------------------------------------------------------------------
// Hand computations in f64.

const A0: [f32; 3] = [0.8, -0.5, 1.2];
const B0: [f32; 2] = [0.6, -0.9];

fn z0() -> Vec<f64> {
    to_f64(&[A0.as_slice(), B0.as_slice()].concat())
}

fn hadamard(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x * y).collect()
}

/// f applied to the a part and the b part of z separately.
fn per_tensor(z: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let (a, b) = split(z);
    [f(a), f(b)].concat()
}

/// x shrunk to norm r if longer.
fn clip(x: &[f64], r: f64) -> Vec<f64> {
    let n = norm(x);
    if n > r { scaled(x, r / n) } else { x.to_vec() }
}

/// Adam exactly as PyTorch (and burn) define it, β 0.9/0.999, ε 1e-8.
struct HandAdam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl HandAdam {
    fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, w: &[f64], g: &[f64], lr: f64) -> Vec<f64> {
        self.t += 1;
        let (b1, b2) = (0.9f64, 0.999f64);
        (0..w.len())
            .map(|i| {
                self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
                self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
                let m_hat = self.m[i] / (1.0 - b1.powi(self.t));
                let v_hat = self.v[i] / (1.0 - b2.powi(self.t));
                w[i] - lr * m_hat / (v_hat.sqrt() + 1e-8)
            })
            .collect()
    }
}

/// Runs one step on the two-tensor model, recording the points the closure saw.
fn step_pair(
    opt: &mut SharpnessOptimizer<Pair>,
    q: &PairQuadratic,
    model: Pair,
    lr: f64,
) -> (Pair, Vec<Vec<f32>>) {
    let seen = RefCell::new(Vec::new());
    let (model, _) = opt
        .step(lr, model, |m: &Pair| {
            seen.borrow_mut().push(m.values());
            Ok::<_, std::convert::Infallible>(q.loss_and_grads(m))
        })
        .unwrap();
    (model, seen.into_inner())
}

fn pair_values(v: &graphsam_optim::ParamVector, model: &Pair) -> Vec<f32> {
    [v.values(model.a.id).unwrap(), v.values(model.b.id).unwrap()].concat()
}

// ---------------------------------------------------------------------------
// Two tensors: global vs per-tensor norms, and Adam's second step.

#[test]
fn sam_with_adam_matches_a_hand_computed_second_adam_step() {
    // Two SAM steps over Adam on (a, b): the second Adam step mixes the two
    // perturbed gradients through m and v, so it pins g_s (not g), the global
    // norm in ε, β₁/β₂ and ε = 1e-8 (∇_b ~ 1e-6, so ε moves b's step by ~1%).
    let q = PairQuadratic::new();
    let (rho, lr1, lr2) = (0.05, 0.01, 0.02);
    let mut opt = SamConfig {
        rho,
        ..SamConfig::default()
    }
    .init::<Pair>()
    .unwrap();
    let model = Pair::new(&A0, &B0, &device());
    let (model, seen1) = step_pair(&mut opt, &q, model, lr1);
    let z1_got = model.values();
    let (model, seen2) = step_pair(&mut opt, &q, model, lr2);

    let mut adam = HandAdam::new(5);
    let z0 = z0();
    let g0 = q.grad(&z0);
    let e0 = scaled(&g0, rho / norm(&g0));
    let z1 = adam.step(&z0, &q.grad(&add(&z0, &e0)), lr1);
    let g1 = q.grad(&z1);
    let e1 = scaled(&g1, rho / norm(&g1));
    let z2 = adam.step(&z1, &q.grad(&add(&z1, &e1)), lr2);

    assert_close(
        &seen1[1],
        &add(&z0, &e0),
        1e-7,
        "step 1 at w + ρ g/‖g‖ (global norm)",
    );
    assert_close(&z1_got, &z1, 1e-7, "first Adam step");
    assert_close(&seen2[1], &add(&z1, &e1), 1e-7, "step 2 at w + ε");
    assert_close(&model.values(), &z2, 1e-7, "second Adam step with g_s");
    // The b part moved by Adam's ~lr steps although its gradient is ~1e-6.
    assert!((z2[4] - f64::from(B0[1])).abs() > 0.02);
}

#[test]
fn sam_perturbation_uses_the_global_norm_not_per_tensor_norms() {
    let q = PairQuadratic::new();
    let rho = 0.3;
    let sgd = SamConfig {
        rho,
        adaptive: false,
        base: sgd(),
    };
    let mut opt = sgd.init::<Pair>().unwrap();
    let (_, seen) = step_pair(&mut opt, &q, Pair::new(&A0, &B0, &device()), 0.01);
    let z0 = z0();
    let g = q.grad(&z0);
    let global = add(&z0, &scaled(&g, rho / norm(&g)));
    let per_tensor_eps = per_tensor(&g, |t| scaled(t, rho / norm(t)));
    // The two answers differ by ~ρ in b, which makes this test meaningful.
    assert!((add(&z0, &per_tensor_eps)[4] - global[4]).abs() > 0.1);
    assert_close(&seen[1], &global, 1e-7, "ε = ρ g/‖g‖ over both tensors");
}

#[test]
fn graphsam_per_tensor_radius_decays_with_rho() {
    // ρ_e = 0.2·0.5^e, radius r_e = 0.02·0.5^e: a's ε (~ρ_e long) is clipped
    // to exactly r_e at every step, b's (~1e-7 ρ_e) is left alone.
    let q = PairQuadratic::new();
    let (rho, r0) = (0.2, 0.02);
    let config = GraphSamConfig {
        rho,
        radius: Some(r0),
        base: sgd(),
        ..GraphSamConfig::default()
    };
    let mut opt = config.init::<Pair>().unwrap();
    let mut model = Pair::new(&A0, &B0, &device());
    for epoch in 0..3u64 {
        opt.start_epoch(epoch);
        let r_e = r0 * 0.5f64.powi(epoch as i32);
        assert_eq!(opt.rho(), Some(rho * 0.5f64.powi(epoch as i32)));
        for step in 0..2 {
            let w = model.z();
            let (next, seen) = step_pair(&mut opt, &q, model, 0.01);
            let shift: Vec<f64> = to_f64(seen.last().unwrap())
                .iter()
                .zip(&w)
                .map(|(x, y)| x - y)
                .collect();
            let (eps_a, eps_b) = split(&shift);
            assert!(
                (norm(eps_a) - r_e).abs() < 2e-6,
                "epoch {epoch} step {step}: ‖ε_a‖ = {} instead of the radius {r_e}",
                norm(eps_a)
            );
            assert!(
                norm(eps_b) < 1e-6,
                "epoch {epoch}: b is not pushed to the radius"
            );
            model = next;
        }
    }
}

#[test]
fn graphsam_anchor_resets_g_h_to_the_exact_gradient() {
    let q = Quadratic::new(A.to_vec());
    let (rho, beta, lr) = (0.1, 0.9, 0.05);
    let config = GraphSamConfig {
        rho,
        beta,
        base: sgd(),
        ..GraphSamConfig::default()
    };
    let mut opt = config.init::<Point>().unwrap();
    let mut model = Point::new(&W0, &device());
    let id = model.w.id;
    opt.start_epoch(0);
    for _ in 0..3 {
        model = step_recording(&mut opt, &q, model, lr).0;
    }
    let g_h = to_f64(&opt.perturbation_estimate().unwrap().values(id).unwrap());
    let g_s = to_f64(&opt.last_update_gradient().unwrap().values(id).unwrap());
    let w = to_f64(&model.values());
    let exact = q.grad(&w);
    // Had the EMA continued, g_h would be this, far from the exact gradient.
    let continued = add(
        &scaled(&g_h, beta),
        &scaled(&g_s, (1.0 - beta) / norm(&g_s)),
    );
    assert!(norm(&add(&continued, &scaled(&exact, -1.0))) > 0.1);

    opt.start_epoch(1);
    let (_, seen) = step_recording(&mut opt, &q, model, lr);
    assert_eq!(seen.len(), 2, "the anchor takes the clean gradient too");
    assert_close(
        &opt.perturbation_estimate().unwrap().values(id).unwrap(),
        &exact,
        1e-6,
        "g_h = ∇L(w)",
    );
    let rho_1 = rho * 0.5;
    assert_close(
        &seen[1],
        &add(&w, &scaled(&exact, rho_1 / norm(&exact))),
        1e-6,
        "ε from the exact gradient",
    );
}

// ---------------------------------------------------------------------------
// GraphSAM as the authors' code computed it.

#[test]
fn reference_code_reproduces_the_authors_gpu_arithmetic() {
    // GraphSamConfig::reference_code(): ρ = r = 0.05, β = 0.99, |w|²
    // weighting, Adam. Anchor: ε_t = clip_r(w_t²⊙g_t ρ/‖|w|⊙g‖). Between
    // anchors their norm of zeroed gradients makes ε_t = r d_t/‖d_t‖ with
    // d = w²⊙g_h, and g_h ← β g_h + (1−β) g_s,t/‖g_s,t + 1e-8‖ per tensor.
    // Adam receives L(w+ε)·∇L(w+ε) (their loss.backward(loss.detach())).
    let q = PairQuadratic::new();
    let config = GraphSamConfig::reference_code();
    let (rho, r, beta, lr) = (0.05, 0.05, 0.99, 0.01);
    assert_eq!(
        (config.rho, config.radius, config.beta),
        (rho, Some(r), beta)
    );
    let mut opt = config.init::<Pair>().unwrap();
    opt.start_epoch(0);
    let mut model = Pair::new(&A0, &B0, &device());

    let mut adam = HandAdam::new(5);
    let mut z = z0();
    let mut g_h: Vec<f64> = Vec::new();
    let mut g_s: Vec<f64> = Vec::new();
    for step in 0..3 {
        let eps = if step == 0 {
            g_h = q.grad(&z);
            let t: Vec<f64> = z.iter().map(|x| x.abs()).collect();
            let scale = rho / (norm(&hadamard(&t, &g_h)) + 1e-12);
            let raw = scaled(&hadamard(&hadamard(&t, &t), &g_h), scale);
            per_tensor(&raw, |e| clip(e, r))
        } else {
            let direction = per_tensor(&g_s, |g| {
                let shifted: Vec<f64> = g.iter().map(|x| x + 1e-8).collect();
                scaled(g, 1.0 / norm(&shifted))
            });
            g_h = add(&scaled(&g_h, beta), &scaled(&direction, 1.0 - beta));
            let d = hadamard(&hadamard(&z, &z), &g_h);
            per_tensor(&d, |d| scaled(d, r / norm(d)))
        };
        let at = add(&z, &eps);
        g_s = scaled(&q.grad(&at), q.loss(&at));
        let expected = adam.step(&z, &g_s, lr);

        let (next, seen) = step_pair(&mut opt, &q, model, lr);
        assert_eq!(
            seen.len(),
            if step == 0 { 2 } else { 1 },
            "step {step}: passes"
        );
        assert_close(
            seen.last().unwrap(),
            &at,
            1e-6,
            &format!("step {step}: evaluated at w + ε"),
        );
        let got_g_h = pair_values(opt.perturbation_estimate().unwrap(), &next);
        assert_close(&got_g_h, &g_h, 1e-6, &format!("step {step}: g_h"));
        assert_close(
            &next.values(),
            &expected,
            1e-6,
            &format!("step {step}: weights"),
        );
        if step > 0 {
            // Between anchors each tensor's ε lies exactly on the radius.
            let (ea, eb) = split(&eps);
            assert!((norm(ea) - r).abs() < 1e-12 && (norm(eb) - r).abs() < 1e-12);
        }
        z = expected;
        model = next;
    }
}

#[test]
fn reference_quirks_need_a_radius() {
    let config = GraphSamConfig {
        radius: None,
        ..GraphSamConfig::reference_code()
    };
    let err = config.init::<Pair>().unwrap_err();
    assert_eq!(err.field, "reference_quirks", "{err}");
}

// ---------------------------------------------------------------------------
// Robustness.

#[test]
fn non_finite_gradient_leaves_adam_untouched_and_forces_a_re_anchor() {
    let q = Quadratic::new(A.to_vec());
    let (rho, lr) = (0.05, 0.01);
    let mut opt = GraphSamConfig::default().init::<Point>().unwrap();
    opt.start_epoch(0);
    let model = Point::new(&W0, &device());
    let id = model.w.id;
    let calls = RefCell::new(0);
    let closure = |m: &Point| {
        *calls.borrow_mut() += 1;
        if *calls.borrow() == 3 {
            // Step 1's only pass: finite loss, NaN gradient (√w at w < 0).
            let (loss, _) = q.loss_and_grads(m);
            let bad = m.w.val().sqrt().sum();
            return Ok::<_, std::convert::Infallible>((
                loss,
                GradientsParams::from_grads(bad.backward(), m),
            ));
        }
        Ok(q.loss_and_grads(m))
    };
    let mut closure = closure;

    let mut adam = HandAdam::new(3);
    let w0 = to_f64(&W0);
    let g0 = q.grad(&w0);
    let w1 = adam.step(&w0, &q.grad(&add(&w0, &scaled(&g0, rho / norm(&g0)))), lr);

    let (model, _) = opt.step(lr, model, &mut closure).unwrap();
    let (model, report) = opt.step(lr, model, &mut closure).unwrap();
    assert_eq!(report.passes, 1);
    assert!(
        report
            .warnings
            .contains(&StepWarning::UpdateSkipped { step: 1 }),
        "{:?}",
        report.warnings
    );
    assert_close(
        &model.values(),
        &w1,
        1e-6,
        "weights unchanged by the skipped step",
    );
    assert!(
        opt.perturbation_estimate().is_none(),
        "g_h dropped: the EMA lost its g_s"
    );

    let (model, report) = opt.step(lr, model, &mut closure).unwrap();
    assert!(
        report.exact_perturbation && report.passes == 2,
        "the step after a skip re-anchors"
    );
    let g1 = q.grad(&w1);
    assert_close(
        &opt.perturbation_estimate().unwrap().values(id).unwrap(),
        &g1,
        1e-6,
        "g_h = ∇L(w)",
    );
    // Adam's second step: its moments and step count saw only step 0.
    let w2 = adam.step(&w1, &q.grad(&add(&w1, &scaled(&g1, rho / norm(&g1)))), lr);
    assert_close(
        &model.values(),
        &w2,
        1e-6,
        "second Adam step from step 0's moments",
    );
    assert_eq!(opt.counters().updates_skipped, 1);
}

#[test]
fn rho_schedules_with_a_period_longer_than_one_epoch() {
    let (rho0, gamma, period) = (0.08, 0.5, 3u64);
    let step = GraphSamConfig {
        rho: rho0,
        gamma,
        rho_period: period,
        ..GraphSamConfig::default()
    };
    let compounding = GraphSamConfig {
        rho_decay: RhoDecay::Compounding,
        ..step.clone()
    };
    let mut by_step = step.init::<Point>().unwrap();
    let mut by_compounding = compounding.init::<Point>().unwrap();
    for e in 0..10u64 {
        by_step.start_epoch(e);
        by_compounding.start_epoch(e);
        let m = (e / period) as i32;
        // StepLR: ρ₀ γ^m; compounding: ρ ← ρ γ^m at e = mλ, i.e. ρ₀ γ^(m(m+1)/2).
        let expected_step = rho0 * gamma.powi(m);
        let expected_compounding = rho0 * gamma.powi(m * (m + 1) / 2);
        assert!(
            (by_step.rho().unwrap() - expected_step).abs() < 1e-15,
            "epoch {e}: step"
        );
        assert!(
            (by_compounding.rho().unwrap() - expected_compounding).abs() < 1e-15,
            "epoch {e}: compounding {} vs {expected_compounding}",
            by_compounding.rho().unwrap()
        );
    }
    // Epoch 9: m = 3, so γ³ vs γ⁶.
    assert_eq!(by_step.rho(), Some(0.01));
    assert_eq!(by_compounding.rho(), Some(0.08 / 64.0));
}

#[test]
fn looksam_with_zero_rho_takes_plain_base_steps() {
    let q = Quadratic::new(A.to_vec());
    let lr = 0.05;
    let mut opt = LookSamConfig {
        rho: 0.0,
        k: 2,
        alpha: 0.7,
        base: sgd(),
    }
    .init::<Point>()
    .unwrap();
    let mut model = Point::new(&W0, &device());
    for step in 0..5 {
        let w = to_f64(&model.values());
        let (next, seen) = step_recording(&mut opt, &q, model, lr);
        assert_eq!(
            seen.len(),
            1,
            "step {step}: no perturbation, no second pass"
        );
        assert_close(
            &next.values(),
            &add(&w, &scaled(&q.grad(&w), -lr)),
            1e-6,
            &format!("step {step}: w − lr g"),
        );
        assert!(
            opt.orthogonal_component().is_none(),
            "no g_v from an unperturbed SAM step"
        );
        model = next;
    }
}

#[test]
fn a_failed_step_returns_the_model() {
    let q = Quadratic::new(A.to_vec());
    let mut opt = SamConfig::default().init::<Point>().unwrap();
    let model = Point::new(&W0, &device());
    let failure = opt
        .step(1e-3, model, |_: &Point| {
            Err::<(f32, GradientsParams), _>("no batch")
        })
        .unwrap_err();
    let (model, error) = failure.into_parts();
    assert!(matches!(error, StepError::Closure("no batch")));
    assert_eq!(model.values(), W0.to_vec());
    // A non-finite loss at w+ε also hands back the untouched model.
    let calls = RefCell::new(0);
    let failure = opt
        .step(1e-3, model, |m: &Point| {
            *calls.borrow_mut() += 1;
            let (loss, grads) = q.loss_and_grads(m);
            Ok::<_, std::convert::Infallible>((
                if *calls.borrow() == 2 {
                    f32::INFINITY
                } else {
                    loss
                },
                grads,
            ))
        })
        .unwrap_err();
    assert!(matches!(
        failure.error,
        StepError::NonFiniteLoss {
            point: graphsam_optim::EvalPoint::Perturbed,
            ..
        }
    ));
    let model = failure.model;
    assert_eq!(model.values(), W0.to_vec());
    // The optimizer goes on from where it was.
    let (model, seen) = step_recording(&mut opt, &q, model, 1e-3);
    assert_eq!(opt.global_step(), 1);
    assert!(seen.len() == 2 && model.values() != W0.to_vec());
}

#[test]
fn graphsam_refuses_to_step_before_start_epoch() {
    let q = Quadratic::new(A.to_vec());
    let mut opt = GraphSamConfig::default().init::<Point>().unwrap();
    let failure = opt
        .step(1e-3, Point::new(&W0, &device()), |m: &Point| {
            Ok::<_, std::convert::Infallible>(q.loss_and_grads(m))
        })
        .unwrap_err();
    assert!(
        matches!(
            failure.error,
            StepError::MissingCall {
                call: "start_epoch(epoch)",
                ..
            }
        ),
        "{failure}"
    );
    assert!(failure.to_string().contains("start_epoch"), "{failure}");
    assert_eq!(failure.model.values(), W0.to_vec());
    assert_eq!(opt.counters().forward, 0, "refused before any pass");
    opt.start_epoch(0);
    assert!(step_recording(&mut opt, &q, failure.model, 1e-3).1.len() == 2);
}

// ---------------------------------------------------------------------------
// AE-SAM and RST.

#[test]
fn ae_sam_takes_sam_steps_exactly_where_the_gradient_norm_is_unusually_large() {
    let q = Quadratic::new(A.to_vec());
    // Chosen so that every decision clears its threshold by ≥ 9%, and that
    // σ² in place of σ, or μ_{t−1} in the variance, would decide differently.
    let (rho, lr, total) = (0.3, 0.15, 8u64);
    let config = AeSamConfig {
        rho,
        base: sgd(),
        ..AeSamConfig::default()
    };
    assert_eq!(
        (config.delta, config.lambda1, config.lambda2),
        (0.9, -1.0, 1.0)
    );
    let mut opt = config.init::<Point>().unwrap();
    opt.set_total_steps(total);
    let mut model = Point::new(&W0, &device());

    let (mut mean, mut var) = (0.0f64, 0.0f64);
    let mut decisions = Vec::new();
    let mut w = to_f64(&W0);
    for t in 0..total {
        let g = q.grad(&w);
        let sq = norm(&g).powi(2);
        mean = 0.9 * mean + 0.1 * sq;
        var = 0.9 * var + 0.1 * (sq - mean).powi(2);
        let c = -(t as f64 / total as f64) + (1.0 - t as f64 / total as f64) * 1.0;
        let sam = sq >= mean + c * var.sqrt();
        decisions.push(sam);
        let update = if sam {
            q.grad(&add(&w, &scaled(&g, rho / norm(&g))))
        } else {
            g
        };
        w = add(&w, &scaled(&update, -lr));

        let seen = RefCell::new(0);
        let (next, report) = opt
            .step(lr, model, |m: &Point| {
                *seen.borrow_mut() += 1;
                Ok::<_, std::convert::Infallible>(q.loss_and_grads(m))
            })
            .unwrap();
        assert_eq!(
            report.exact_perturbation, sam,
            "step {t}: SAM iff ‖g‖² ≥ μ + c_t σ"
        );
        assert_eq!(*seen.borrow(), if sam { 2 } else { 1 }, "step {t}: passes");
        assert_close(&next.values(), &w, 1e-5, &format!("step {t}: weights"));
        model = next;
    }
    // The run exercises both branches.
    assert_eq!(
        decisions,
        [true, false, false, false, false, false, true, true]
    );
    let (m, v) = opt.grad_norm_statistics().unwrap();
    assert!(
        (m - mean).abs() < 1e-5 * mean && (v - var).abs() < 1e-4 * var,
        "μ {m} vs {mean}, σ² {v} vs {var}"
    );
    assert_eq!(opt.counters().perturbed_steps, 3);
    assert_eq!(opt.counters().forward, 11);
}

#[test]
fn ae_sam_and_scheduled_rst_need_the_run_length() {
    let q = Quadratic::new(A.to_vec());
    let linear = RstConfig {
        schedule: RstSchedule::Linear {
            start: 0.2,
            end: 0.8,
        },
        ..RstConfig::default()
    };
    for config in [
        OptimizerConfig::AeSam(AeSamConfig::default()),
        OptimizerConfig::Rst(linear),
    ] {
        let mut opt = config.init::<Point>().unwrap();
        let failure = opt
            .step(1e-3, Point::new(&W0, &device()), |m: &Point| {
                Ok::<_, std::convert::Infallible>(q.loss_and_grads(m))
            })
            .unwrap_err();
        assert!(failure.to_string().contains("set_total_steps"), "{failure}");
        opt.set_total_steps(10);
        assert!(
            opt.step(1e-3, failure.model, |m: &Point| Ok::<
                _,
                std::convert::Infallible,
            >(
                q.loss_and_grads(m)
            ))
            .is_ok()
        );
    }
    // A constant probability needs no T.
    let mut opt = RstConfig::default().init::<Point>().unwrap();
    assert!(
        opt.step(1e-3, Point::new(&W0, &device()), |m: &Point| Ok::<
            _,
            std::convert::Infallible,
        >(
            q.loss_and_grads(m)
        ))
        .is_ok()
    );
}

#[test]
fn rst_takes_sam_steps_where_its_seeded_draw_falls_below_p() {
    let q = Quadratic::new(A.to_vec());
    let (rho, lr, seed, p) = (0.1, 0.05, 7u64, 0.5);
    let config = RstConfig {
        rho,
        seed,
        schedule: RstSchedule::Constant { p },
        base: sgd(),
    };
    let mut opt = config.init::<Point>().unwrap();
    let mut model = Point::new(&W0, &device());
    let mut w = to_f64(&W0);
    let mut decisions = Vec::new();
    for t in 0..10u64 {
        let sam = rst_draw(seed, t) < p;
        decisions.push(sam);
        let g = q.grad(&w);
        let update = if sam {
            q.grad(&add(&w, &scaled(&g, rho / norm(&g))))
        } else {
            g
        };
        w = add(&w, &scaled(&update, -lr));
        let (next, seen) = step_recording(&mut opt, &q, model, lr);
        assert_eq!(seen.len(), if sam { 2 } else { 1 }, "step {t}");
        assert_close(&next.values(), &w, 1e-5, &format!("step {t}: weights"));
        model = next;
    }
    assert!(
        decisions.contains(&true) && decisions.contains(&false),
        "{decisions:?}"
    );
    let sam_steps = decisions.iter().filter(|d| **d).count() as u64;
    assert_eq!(opt.counters().forward, 10 + sam_steps);
    assert_eq!(opt.counters().perturbed_steps, sam_steps);
    // Another seed draws differently; the same seed draws the same.
    let other: Vec<bool> = (0..10).map(|t| rst_draw(seed + 1, t) < p).collect();
    assert_ne!(other, decisions);
    assert_eq!(
        (0..10).map(|t| rst_draw(seed, t) < p).collect::<Vec<_>>(),
        decisions
    );
}

#[test]
fn rst_draws_are_uniform_and_schedules_follow_their_formulas() {
    // 50 000 draws: the binomial standard deviation is ≤ 0.0023, so 0.01 is ~4.5σ.
    for seed in 0..4u64 {
        for p in [0.1, 0.3, 0.5, 0.9] {
            let hits = (0..50_000u64).filter(|&t| rst_draw(seed, t) < p).count() as f64 / 50_000.0;
            assert!((hits - p).abs() < 0.01, "seed {seed}: P(u < {p}) = {hits}");
        }
    }
    let total = Some(100);
    let linear = RstSchedule::Linear {
        start: 0.2,
        end: 0.8,
    };
    assert_eq!(linear.probability(0, total), Some(0.2));
    assert!((linear.probability(50, total).unwrap() - 0.5).abs() < 1e-15);
    assert!((linear.probability(75, total).unwrap() - 0.65).abs() < 1e-15);
    let piecewise = RstSchedule::Piecewise {
        start: 0.1,
        end: 0.9,
        switch_at: 0.5,
    };
    assert_eq!(
        (
            piecewise.probability(49, total),
            piecewise.probability(50, total)
        ),
        (Some(0.1), Some(0.9))
    );
    let cosine = RstSchedule::Cosine {
        start: 1.0,
        end: 0.0,
    };
    assert!((cosine.probability(50, total).unwrap() - 0.5).abs() < 1e-15);
    assert!(
        (cosine.probability(25, total).unwrap() - (0.5 + 0.5 * std::f64::consts::FRAC_1_SQRT_2))
            .abs()
            < 1e-15
    );
    assert_eq!(linear.probability(3, None), None);
    assert_eq!(
        RstSchedule::Constant { p: 0.4 }.probability(3, None),
        Some(0.4)
    );
    assert_eq!(graphsam_optim::ae_sam_threshold(-1.0, 1.0, 25, 100), 0.5);
}
