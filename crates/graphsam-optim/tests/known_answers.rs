//! The optimizers' math against closed forms on L(w) = ½ wᵀAw.

mod common;

use std::cell::RefCell;

use common::{Point, Quadratic, assert_close, device, norm, to_f64};
use graphsam_optim::{
    AnchorPolicy, BaseOptimizerConfig, GraphSamConfig, LookSamConfig, OptimizerConfig, RhoDecay,
    SamConfig, SamKConfig, SgdConfig, SharpnessOptimizer, StepError, StepWarning,
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
    let mut opt = OptimizerConfig::Sam(SamConfig { rho, adaptive: false, base: sgd() })
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
    for backend in graphsam_optim::ComputeBackend::cpu_backends() {
        let mut opt = SamConfig { rho, adaptive: false, base: sgd() }.init::<Point>().unwrap();
        let model = Point::new(&W0, &backend.autodiff_device());
        let (model, _) = step_recording(&mut opt, &q, model, lr);
        assert_close(&model.values(), &expected, 1e-6, backend.name());
    }
}

#[test]
fn asam_perturbation_matches_its_formula() {
    let q = Quadratic::new(A.to_vec());
    let rho = 0.5;
    let mut opt = OptimizerConfig::Sam(SamConfig { rho, adaptive: true, base: sgd() })
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
    let mut opt = SamConfig { rho, ..SamConfig::default() }.init::<Point>().unwrap();
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
    assert_eq!(by_sam.values(), by_graphsam.values(), "bit-identical weights");
}

#[test]
fn graphsam_g_h_follows_the_ema_and_drives_the_perturbation() {
    let q = Quadratic::new(A.to_vec());
    let (rho, beta, lr) = (0.2, 0.9, 0.05);
    let config = GraphSamConfig { rho, beta, base: sgd(), ..GraphSamConfig::default() };
    let mut opt = config.init::<Point>().unwrap();
    opt.start_epoch(0);
    let model = Point::new(&W0, &device());
    let id = model.w.id;

    // Anchor: g_h = ∇L(w0) exactly.
    let (model, _) = step_recording(&mut opt, &q, model, lr);
    let g0 = q.grad(&to_f64(&W0));
    assert_close(&opt.perturbation_estimate().unwrap().values(id).unwrap(), &g0, 1e-6, "anchor g_h");
    let mut g_h = g0;
    let mut g_s = to_f64(&opt.last_update_gradient().unwrap().values(id).unwrap());

    let mut model = model;
    for step in 1..4 {
        let w = to_f64(&model.values());
        let expected_g_h = add(&scaled(&g_h, beta), &scaled(&g_s, (1.0 - beta) / norm(&g_s)));
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
        assert_close(&opt.last_update_gradient().unwrap().values(id).unwrap(), &q.grad(&w_adv), 1e-5, "g_s stored");
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
    assert_close(&seen[1], &add(&w, &scaled(&g, radius / norm(&g))), 1e-6, "ε clipped to radius");
    let _ = step_recording(&mut opt, &q, model, 0.01);
}

#[test]
fn rho_follows_step_lr_and_the_compounding_option_its_formula() {
    let step = GraphSamConfig { rho: 0.05, gamma: 0.5, rho_period: 2, ..GraphSamConfig::default() };
    let mut opt = step.init::<Point>().unwrap();
    for e in 0..7u64 {
        opt.start_epoch(e);
        let expected = 0.05 * 0.5f64.powi((e / 2) as i32);
        assert!((opt.rho().unwrap() - expected).abs() < 1e-15, "epoch {e}: StepLR ρ");
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
        assert!((opt.rho().unwrap() - expected).abs() < 1e-15 * (1.0 + expected), "epoch {e}: compounding ρ");
    }
    // Calling start_epoch twice for the same epoch does not decay twice.
    let before = opt.rho();
    opt.start_epoch(5);
    assert_eq!(opt.rho(), before);
    assert_eq!(SamConfig::default().init::<Point>().unwrap().rho(), Some(0.05));
    assert_eq!(OptimizerConfig::Adam(Default::default()).init::<Point>().unwrap().rho(), None);
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
    assert_eq!(passes_for_epoch("graphsam".parse().unwrap(), s), 8, "GraphSAM: S+1");
    let sam_k = OptimizerConfig::SamK(SamKConfig { k: 3, ..SamKConfig::default() });
    assert_eq!(passes_for_epoch(sam_k, s), 10, "SAM-3: S + ⌈S/3⌉");
    let look = OptimizerConfig::LookSam(LookSamConfig { k: 3, ..LookSamConfig::default() });
    assert_eq!(passes_for_epoch(look, s), 10, "LookSAM-3: S + ⌈S/3⌉");
    let every = OptimizerConfig::GraphSam(GraphSamConfig {
        anchor: AnchorPolicy::Steps { steps: 2 },
        ..GraphSamConfig::default()
    });
    assert_eq!(passes_for_epoch(every, s), 11, "GraphSAM anchored every 2 steps: S + ⌈S/2⌉");
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
    let mut opt = SamKConfig { rho: 0.1, k: 2, adaptive: false, base: sgd() }.init::<Point>().unwrap();
    let model = Point::new(&W0, &device());
    let (model, seen) = step_recording(&mut opt, &q, model, lr);
    assert_eq!(seen.len(), 2, "step 0 is a SAM step");
    let w = to_f64(&model.values());
    let (model, seen) = step_recording(&mut opt, &q, model, lr);
    assert_eq!(seen.len(), 1, "step 1 is a plain step");
    assert_close(&model.values(), &add(&w, &scaled(&q.grad(&w), -lr)), 1e-6, "plain SGD step");
}

#[test]
fn looksam_reuses_the_orthogonal_component() {
    let q = Quadratic::new(A.to_vec());
    let (rho, alpha, lr) = (0.3, 0.7, 0.05);
    let mut opt = LookSamConfig { rho, k: 3, alpha, base: sgd() }.init::<Point>().unwrap();
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
    assert_close(&model.values(), &add(&w1, &scaled(&update, -lr)), 1e-5, "g + α‖g‖/‖g_v‖ g_v");
}

#[test]
fn zero_gradient_gives_no_perturbation_no_nan_and_a_counted_warning() {
    let q = Quadratic::new(A.to_vec());
    for name in ["sam", "graphsam", "sam-k", "looksam"] {
        let mut opt = name.parse::<OptimizerConfig>().unwrap().init::<Point>().unwrap();
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
        assert!(seen.borrow().iter().flatten().all(|v| *v == 0.0), "{name}: never perturbed");
        assert_eq!(report.passes, 1, "{name}: no second pass without a perturbation");
        assert!(
            matches!(report.warnings.as_slice(), [StepWarning::NoPerturbation { step: 0, .. }]),
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
            Ok::<_, std::convert::Infallible>((loss, burn::optim::GradientsParams::from_grads(bad.backward(), m)))
        })
        .unwrap();
    assert_eq!(model.values(), W0.to_vec(), "weights unchanged");
    assert!(report.warnings.iter().any(|w| matches!(w, StepWarning::UpdateSkipped { step: 0 })));
    assert!(report.warnings.iter().any(|w| matches!(w, StepWarning::NoPerturbation { .. })));
    assert_eq!(opt.counters().updates_skipped, 1);
    // The next step is healthy again.
    let (model, report) = opt
        .step(1e-3, model, |m: &Point| Ok::<_, std::convert::Infallible>(q.loss_and_grads(m)))
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
    match &err {
        StepError::NonFiniteLoss { step, .. } => assert_eq!(*step, 2),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("step 2"), "{err}");
    assert_eq!(opt.global_step(), 2, "the failed step is not counted as taken");
}

#[test]
fn closure_errors_pass_through() {
    let mut opt = SamConfig::default().init::<Point>().unwrap();
    let model = Point::new(&W0, &device());
    let err = opt
        .step(1e-3, model, |_: &Point| Err::<(f32, burn::optim::GradientsParams), _>("batch 3 is empty"))
        .unwrap_err();
    assert!(matches!(err, StepError::Closure("batch 3 is empty")));
    assert_eq!(opt.counters().forward, 0);
}
