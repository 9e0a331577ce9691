//! Fit y = sin(3x) with a small burn MLP and GraphSAM over Adam with NoamLR.
//! Run: cargo run -p graphsam-optim --example train_graphsam
//! (on burn's flex CPU backend, which the crate's dev-dependencies enable).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use graphsam_optim::{GraphSamConfig, NoamLr, NoamLrConfig};

#[derive(Module, Debug)]
struct Mlp {
    hidden: Linear,
    out: Linear,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex().autodiff();
    let xs: Vec<f32> = (0..64).map(|i| i as f32 / 32.0 - 1.0).collect();
    let ys: Vec<f32> = xs.iter().map(|x| (3.0 * x).sin()).collect();
    let x = Tensor::<2>::from_data(TensorData::new(xs, [64, 1]), &device);
    let y = Tensor::<2>::from_data(TensorData::new(ys, [64, 1]), &device);
    let mut model = Mlp {
        hidden: LinearConfig::new(1, 32).init(&device),
        out: LinearConfig::new(32, 1).init(&device),
    };

    let (epochs, steps_per_epoch) = (40, 4);
    let mut opt = GraphSamConfig::default().init::<Mlp>()?;
    let noam = NoamLr::new(
        NoamLrConfig {
            max_lr: 1e-2,
            ..Default::default()
        },
        steps_per_epoch,
        epochs,
    )?;
    for epoch in 0..epochs {
        opt.start_epoch(epoch as u64);
        for b in 0..steps_per_epoch {
            let (xb, yb) = (
                x.clone().slice(b * 16..b * 16 + 16),
                y.clone().slice(b * 16..b * 16 + 16),
            );
            let (next, report) = opt.step(noam.lr_at(opt.global_step()), model, |m: &Mlp| {
                let loss = (m.out.forward(m.hidden.forward(xb.clone()).tanh()) - yb.clone())
                    .square()
                    .mean();
                let value = loss.clone().into_scalar::<f32>();
                Ok::<_, std::convert::Infallible>((
                    value,
                    GradientsParams::from_grads(loss.backward(), m),
                ))
            })?;
            model = next;
            if b == 0 && epoch % 10 == 0 {
                println!(
                    "epoch {epoch:>2}  loss {:.4}  rho {:.2e}",
                    report.loss,
                    opt.rho().unwrap_or(0.0)
                );
            }
        }
    }
    let c = opt.counters();
    println!(
        "{} steps, {} forward+backward passes (Adam would use {})",
        c.steps, c.forward, c.steps
    );
    Ok(())
}
