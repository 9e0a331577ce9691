//! graphsam-optim driving a plain burn model (`burn::nn::Linear`), with no
//! graphsam code around it: a SAM step against a hand computation, a
//! GraphSAM run that fits the data, and its state restored onto the model.

use burn::module::Param;
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use graphsam_optim::{BaseOptimizerConfig, GraphSamConfig, SamConfig, SgdConfig};

/// Three samples of two inputs, row-major, and their targets.
const X: [f32; 6] = [0.5, -1.0, 1.5, 0.25, -0.75, 2.0];
const Y: [f32; 3] = [1.0, -0.5, 0.75];

fn device() -> burn::tensor::Device {
    burn::tensor::Device::flex().autodiff()
}

/// y = x·w + b with w = (w₀, w₁)ᵀ.
fn linear(w: [f32; 2], b: f32, device: &burn::tensor::Device) -> Linear {
    Linear {
        weight: Param::from_data(TensorData::new(w.to_vec(), [2, 1]), device),
        bias: Some(Param::from_data(TensorData::new(vec![b], [1]), device)),
    }
}

/// (w₀, w₁, b) of the model.
fn params(model: &Linear) -> Vec<f64> {
    let mut v = model.weight.val().into_data().try_to_vec::<f32>().unwrap();
    v.extend(
        model
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    );
    v.into_iter().map(f64::from).collect()
}

fn loss_and_grads(model: &Linear) -> (f32, GradientsParams) {
    let device = model.weight.val().device();
    let x = Tensor::<2>::from_data(TensorData::new(X.to_vec(), [3, 2]), &device);
    let y = Tensor::<2>::from_data(TensorData::new(Y.to_vec(), [3, 1]), &device);
    let loss = (model.forward(x) - y).square().mean();
    let value = loss.clone().into_scalar::<f32>();
    (value, GradientsParams::from_grads(loss.backward(), model))
}

/// ∇ of mean((x·w + b − y)²) in (w₀, w₁, b), by hand: (2/n) Σ rᵢ (xᵢ, 1).
fn grad(p: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; 3];
    for i in 0..3 {
        let (x0, x1) = (f64::from(X[2 * i]), f64::from(X[2 * i + 1]));
        let r = x0 * p[0] + x1 * p[1] + p[2] - f64::from(Y[i]);
        for (gj, xj) in g.iter_mut().zip([x0, x1, 1.0]) {
            *gj += 2.0 / 3.0 * r * xj;
        }
    }
    g
}

#[test]
fn sam_steps_a_burn_linear_layer_as_computed_by_hand() {
    let (rho, lr) = (0.1, 0.1);
    let base = BaseOptimizerConfig::Sgd(SgdConfig::default());
    let mut opt = SamConfig {
        rho,
        adaptive: false,
        base,
    }
    .init::<Linear>()
    .unwrap();
    let model = linear([0.3, -0.2], 0.1, &device());
    let (model, report) = opt
        .step(lr, model, |m: &Linear| {
            Ok::<_, std::convert::Infallible>(loss_and_grads(m))
        })
        .unwrap();

    let p = [0.3f32, -0.2, 0.1].map(f64::from);
    let g = grad(&p);
    let g_norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let shifted: Vec<f64> = p
        .iter()
        .zip(&g)
        .map(|(p, g)| p + rho * g / g_norm)
        .collect();
    let g_s = grad(&shifted);
    let expected: Vec<f64> = p.iter().zip(&g_s).map(|(p, g)| p - lr * g).collect();
    for (got, want) in params(&model).iter().zip(&expected) {
        assert!(
            (got - want).abs() < 1e-6,
            "{:?} vs {expected:?}",
            params(&model)
        );
    }
    assert_eq!(report.passes, 2);
    assert!((report.perturbation_norm.unwrap() - rho).abs() < 1e-6);
}

#[test]
fn graphsam_fits_a_burn_linear_layer_and_its_state_restores_onto_it() {
    let device = device();
    let mut opt = GraphSamConfig::default().init::<Linear>().unwrap();
    let mut model = linear([0.0, 0.0], 0.0, &device);
    let (first, _) = loss_and_grads(&model);
    for epoch in 0..150 {
        opt.start_epoch(epoch);
        model = opt
            .step(0.05, model, |m: &Linear| {
                Ok::<_, std::convert::Infallible>(loss_and_grads(m))
            })
            .unwrap()
            .0;
    }
    let (last, _) = loss_and_grads(&model);
    // Three points, three parameters: the least-squares fit is exact.
    assert!(last < 1e-3 * first, "loss {first} -> {last}");
    assert_eq!(
        opt.counters().forward,
        300,
        "one anchor (2 passes) per 1-step epoch"
    );
    let state = opt.save_state().unwrap();
    let mut resumed = GraphSamConfig::default().init::<Linear>().unwrap();
    resumed.load_state(&state, &model).unwrap();
    assert_eq!(resumed.counters(), opt.counters());
}
