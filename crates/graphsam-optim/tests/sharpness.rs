//! The sharpness measurements against closed forms: the top eigenvalue of a
//! quadratic with a known spectrum, ε-sharpness against ½ρ²λ_max and a
//! brute-force search of the sphere, Li et al.'s filter normalisation.

mod common;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use common::{Point, Quadratic, device};
use graphsam_optim::ParamVector;
use graphsam_optim::sharpness::{
    AscentOptions, FiniteDifferenceStep, PowerIteration, SharpnessError, epsilon_sharpness,
    filter_normalized, gaussian_like, top_hessian_eigenvalue,
};

/// Q diag(λ) Qᵀ for the Householder reflection Q = I − 2uuᵀ/‖u‖²: a dense
/// symmetric matrix whose eigenvalues are exactly `lambda`.
fn with_spectrum(lambda: &[f64], u: &[f64]) -> Vec<f64> {
    let n = lambda.len();
    let uu: f64 = u.iter().map(|x| x * x).sum();
    let q = |i: usize, j: usize| f64::from(u8::from(i == j)) - 2.0 * u[i] * u[j] / uu;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n).map(|k| q(i, k) * lambda[k] * q(j, k)).sum();
        }
    }
    a
}

/// ½ wᵀAw + ¼ Σ w⁴, whose Hessian is A + diag(3w²).
fn quartic(q: &Quadratic, model: &Point) -> (f32, GradientsParams) {
    let device = model.w.val().device();
    let a = Tensor::<2>::from_data(
        TensorData::new(
            q.a.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            [q.n, q.n],
        ),
        &device,
    );
    let w = model.w.val();
    let aw = a.matmul(w.clone().reshape([q.n, 1])).reshape([q.n]);
    let loss = (w.clone() * aw).sum().mul_scalar(0.5) + w.powi_scalar(4).sum().mul_scalar(0.25);
    let value = loss.clone().into_scalar::<f32>();
    (value, GradientsParams::from_grads(loss.backward(), model))
}

/// The largest eigenvalue of a symmetric positive definite matrix, by 2000
/// f64 power iterations on the host (the reference).
fn reference_top_eigenvalue(a: &[f64]) -> f64 {
    let n = (a.len() as f64).sqrt() as usize;
    let mut v = vec![1.0; n];
    let mut lambda = 0.0;
    for _ in 0..2000 {
        let av: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| a[i * n + j] * v[j]).sum())
            .collect();
        let norm = av.iter().map(|x| x * x).sum::<f64>().sqrt();
        lambda = v.iter().zip(&av).map(|(x, y)| x * y).sum::<f64>()
            / v.iter().map(|x| x * x).sum::<f64>();
        v = av.iter().map(|x| x / norm).collect();
    }
    lambda
}

#[test]
fn power_iteration_finds_the_top_eigenvalue_of_a_known_quadratic() {
    let a = with_spectrum(&[4.0, 2.5, 1.0, 0.3], &[1.0, -2.0, 0.5, 1.5]);
    let q = Quadratic::new(a);
    let model = Point::new(&[0.3, -0.7, 0.2, 0.9], &device());
    let estimate = top_hessian_eigenvalue(
        &model,
        |m: &Point| Ok::<_, String>(q.loss_and_grads(m)),
        &PowerIteration {
            max_iterations: 100,
            tolerance: 1e-6,
            ..PowerIteration::default()
        },
    )
    .unwrap();
    assert!(
        (estimate.eigenvalue - 4.0).abs() < 0.01 * 4.0,
        "{estimate:?}"
    );
    assert!((estimate.eigenvalue - 4.0).abs() < 1e-3, "{estimate:?}");
    assert!(estimate.converged, "{estimate:?}");
    assert!(estimate.residual < 0.05, "{estimate:?}");
    // One pass at w, two per iteration.
    assert_eq!(estimate.passes, 1 + 2 * estimate.history.len() as u64);
    // ‖w‖ = 1.20 here, so the relative default step is 1e-3 · 1.20.
    let w_norm = (0.09f64 + 0.49 + 0.04 + 0.81).sqrt();
    assert!(
        (estimate.step - 1e-3 * w_norm).abs() < 1e-6,
        "{}",
        estimate.step
    );
    let loss = 0.5 * {
        let w = [0.3, -0.7, 0.2, 0.9];
        let aw = q.grad(&w);
        w.iter().zip(&aw).map(|(x, y)| x * y).sum::<f64>()
    };
    assert!(
        (estimate.loss - loss).abs() < 1e-5,
        "{} vs {loss}",
        estimate.loss
    );
}

#[test]
fn the_finite_difference_step_is_accurate_on_a_non_quadratic_loss() {
    let a = with_spectrum(&[3.0, 1.5, 0.5], &[0.5, 1.0, -1.0]);
    let q = Quadratic::new(a.clone());
    let w = [0.9f32, -0.4, 0.6];
    // The Hessian of ½wᵀAw + ¼Σw⁴ at w: A + diag(3w²).
    let mut hessian = a;
    for (i, &x) in w.iter().enumerate() {
        hessian[i * 3 + i] += 3.0 * (x as f64).powi(2);
    }
    let expected = reference_top_eigenvalue(&hessian);
    let model = Point::new(&w, &device());
    for step in [
        FiniteDifferenceStep::default(),
        FiniteDifferenceStep::Absolute(1e-2),
    ] {
        let estimate = top_hessian_eigenvalue(
            &model,
            |m: &Point| Ok::<_, String>(quartic(&q, m)),
            &PowerIteration {
                max_iterations: 200,
                tolerance: 1e-7,
                step,
                seed: 3,
            },
        )
        .unwrap();
        assert!(
            (estimate.eigenvalue - expected).abs() < 0.01 * expected,
            "{step:?}: {} vs {expected}",
            estimate.eigenvalue
        );
    }
}

#[test]
fn epsilon_sharpness_at_a_minimum_is_half_rho_squared_lambda_max() {
    let a = with_spectrum(&[4.0, 2.5, 1.0, 0.3], &[1.0, -2.0, 0.5, 1.5]);
    let q = Quadratic::new(a);
    let model = Point::new(&[0.0; 4], &device());
    let rho = 0.1;
    let estimate = epsilon_sharpness(
        &model,
        |m: &Point| Ok::<_, String>(q.loss_and_grads(m)),
        &AscentOptions {
            rho,
            steps: 40,
            random_start: Some(7),
        },
    )
    .unwrap();
    let expected = 0.5 * rho * rho * 4.0;
    assert_eq!(estimate.loss, 0.0);
    assert!(
        (estimate.sharpness - expected).abs() < 0.01 * expected,
        "{} vs {expected}",
        estimate.sharpness
    );
    // Lower bound: never above the true maximum (up to f32 rounding).
    assert!(estimate.sharpness <= expected * (1.0 + 1e-5));
    assert_eq!(estimate.ascent.len(), 41);
    assert_eq!(estimate.passes, 42);

    // At a minimum the gradient gives no direction: a clear error.
    let err = epsilon_sharpness(
        &model,
        |m: &Point| Ok::<_, String>(q.loss_and_grads(m)),
        &AscentOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("gradient at w is zero"), "{err}");
}

#[test]
fn epsilon_sharpness_matches_a_brute_force_search_of_the_sphere() {
    let a = vec![3.0, 0.5, 0.2, 0.5, 2.0, 0.3, 0.2, 0.3, 1.0];
    let q = Quadratic::new(a.clone());
    let w = [0.8, -0.5, 1.2];
    let rho = 0.3;
    let g = q.grad(&w);
    // max over ‖ε‖ = ρ of gᵀε + ½εᵀAε (A is positive definite, so the
    // maximum over the ball lies on the sphere), on a fine angular grid.
    let mut best = f64::MIN;
    let (nt, np) = (600, 1200);
    for i in 0..=nt {
        let theta = std::f64::consts::PI * i as f64 / nt as f64;
        for j in 0..np {
            let phi = std::f64::consts::TAU * j as f64 / np as f64;
            let e = [
                rho * theta.sin() * phi.cos(),
                rho * theta.sin() * phi.sin(),
                rho * theta.cos(),
            ];
            let ae = q.grad(&e);
            let value = (0..3)
                .map(|k| g[k] * e[k] + 0.5 * e[k] * ae[k])
                .sum::<f64>();
            best = best.max(value);
        }
    }
    let model = Point::new(&[0.8, -0.5, 1.2], &device());
    let estimate = epsilon_sharpness(
        &model,
        |m: &Point| Ok::<_, String>(q.loss_and_grads(m)),
        &AscentOptions {
            rho,
            steps: 20,
            random_start: None,
        },
    )
    .unwrap();
    assert!(
        (estimate.sharpness - best).abs() < 0.005 * best,
        "{} vs {best}",
        estimate.sharpness
    );
    // The first iterate is SAM's ε = ρ g/‖g‖, already close to the maximum.
    let g_norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    let e: Vec<f64> = g.iter().map(|x| rho * x / g_norm).collect();
    let ae = q.grad(&e);
    let sam = (0..3)
        .map(|k| g[k] * e[k] + 0.5 * e[k] * ae[k])
        .sum::<f64>();
    assert!(
        (estimate.ascent[0] - estimate.loss - sam).abs() < 1e-4,
        "{:?}",
        estimate.ascent
    );
}

#[test]
fn bad_settings_and_a_non_finite_loss_are_refused() {
    let q = Quadratic::new(vec![2.0, 0.0, 0.0, 1.0]);
    let model = Point::new(&[1.0, 1.0], &device());
    let err = top_hessian_eigenvalue(
        &model,
        |m: &Point| Ok::<_, String>(q.loss_and_grads(m)),
        &PowerIteration {
            max_iterations: 0,
            ..PowerIteration::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        SharpnessError::Setting {
            field: "max_iterations",
            ..
        }
    ));
    let err = epsilon_sharpness(
        &model,
        |m: &Point| Ok::<_, String>(q.loss_and_grads(m)),
        &AscentOptions {
            rho: -1.0,
            ..AscentOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("radius must be positive"), "{err}");
    let err = top_hessian_eigenvalue(
        &model,
        |m: &Point| {
            let (_, grads) = q.loss_and_grads(m);
            Ok::<_, String>((f32::NAN, grads))
        },
        &PowerIteration::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not finite at the weights w"),
        "{err}"
    );
    let err = top_hessian_eigenvalue(
        &model,
        |_: &Point| Err::<(f32, GradientsParams), _>("no data".to_string()),
        &PowerIteration::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "no data");
}

/// A layer-like module: a 3 × 2 weight (two filters of three entries) and a bias.
#[derive(Module, Debug)]
struct Layer {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
}

#[test]
fn filter_normalisation_gives_each_filter_its_weights_norm_and_zeroes_biases() {
    let device = device();
    let layer = Layer {
        weight: Param::from_data(
            TensorData::new(vec![1.0f32, 0.1, 2.0, 0.2, 2.0, -0.2], [3, 2]),
            &device,
        ),
        bias: Param::from_data(TensorData::new(vec![0.5f32, -0.5], [2]), &device),
    };
    // Gradients of Σ weight + Σ bias give a slot for both parameters.
    let loss = layer.weight.val().sum() + layer.bias.val().sum();
    let mut grads = GradientsParams::from_grads(loss.backward(), &layer);
    let like = ParamVector::from_gradients(&layer, &mut grads);
    let weights = ParamVector::weights_like(&layer, &like);
    let direction = gaussian_like(&like, 11);
    let normalized = filter_normalized(&direction, &weights);
    let before = direction.host_values();
    let after = normalized.host_values();
    // Filter j of a 3 × 2 weight: entries j, j + 2, j + 4.
    let w = [1.0f64, 0.1, 2.0, 0.2, 2.0, -0.2];
    for j in 0..2 {
        let norm = |v: &[f64]| (0..3).map(|i| v[2 * i + j].powi(2)).sum::<f64>().sqrt();
        let d: Vec<f64> = after[0].iter().map(|&x| x as f64).collect();
        assert!((norm(&d) - norm(&w)).abs() < 1e-5, "filter {j}: {after:?}");
        for i in 0..3 {
            // Same direction within the filter: one positive factor.
            assert_eq!(before[0][2 * i + j].signum(), after[0][2 * i + j].signum());
        }
    }
    assert_eq!(after[1], vec![0.0, 0.0]);
}

#[test]
fn gaussian_directions_are_seeded_standard_normals() {
    let like = {
        let device = device();
        let point = Point::new(&vec![0.0f32; 20_000], &device);
        let loss = point.w.val().sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &point);
        ParamVector::from_gradients(&point, &mut grads)
    };
    let a = gaussian_like(&like, 1).host_values().concat();
    let b = gaussian_like(&like, 1).host_values().concat();
    let c = gaussian_like(&like, 2).host_values().concat();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let n = a.len() as f64;
    let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(mean.abs() < 0.03, "{mean}");
    assert!((var - 1.0).abs() < 0.05, "{var}");
    assert_eq!(like.num_entries(), 20_000);
}

#[test]
fn per_tensor_cosines_compare_each_parameter_apart() {
    let device = device();
    let layer = Layer {
        weight: Param::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0], [3, 2]),
            &device,
        ),
        bias: Param::from_data(TensorData::new(vec![3.0f32, 4.0], [2]), &device),
    };
    let weights = {
        let loss = layer.weight.val().sum() + layer.bias.val().sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &layer);
        ParamVector::weights_like(&layer, &ParamVector::from_gradients(&layer, &mut grads))
    };
    // Against itself: every tensor at cos 1.
    let own = weights.per_tensor_cosines(&weights);
    assert_eq!(own.len(), 2);
    assert!(own.iter().all(|c| (c - 1.0).abs() < 1e-6), "{own:?}");
    // The weight matrix orthogonal, the bias reversed: 0 and −1 apart,
    // where the whole-vector cosine would give one mixed number.
    let other = weights.map_host(|i, _, _| match i {
        0 => vec![0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        _ => vec![-6.0, -8.0],
    });
    let cos = weights.per_tensor_cosines(&other);
    assert!(
        cos[0].abs() < 1e-6 && (cos[1] + 1.0).abs() < 1e-6,
        "{cos:?}"
    );
    // A zero tensor has no angle and is left out.
    let zero_bias = weights.map_host(|i, _, v| if i == 1 { vec![0.0; 2] } else { v });
    assert_eq!(weights.per_tensor_cosines(&zero_bias).len(), 1);
}
