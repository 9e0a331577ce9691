//! `--device`: which compute backend runs the model.

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::Args;

use graphsam_optim::ComputeBackend;

/// Device flags.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// cpu (the fastest CPU backend, flex), cpu-ndarray, or gpu (needs a build with the `gpu` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArgs {
    /// The compute backend the flag names.
    pub fn backend(&self) -> Result<ComputeBackend> {
        match self.device.as_str() {
            "cpu" => Ok(ComputeBackend::default_cpu()),
            "cpu-flex" | "flex" => Ok("flex".parse()?),
            "cpu-ndarray" | "ndarray" => Ok("ndarray".parse()?),
            d if d == "gpu" || d.starts_with("gpu:") => bail!(
                "--device {d}: this graphsam was built without GPU support; looked for the wgpu \
                 backend, which needs `cargo build --release --features gpu`"
            ),
            other => bail!("unknown --device `{other}` (cpu, cpu-flex, cpu-ndarray, gpu)"),
        }
    }

    /// Backend name for the run record.
    pub fn name(&self) -> String {
        self.backend().map(|b| b.name().to_string()).unwrap_or_else(|_| self.device.clone())
    }

    /// The autodiff device for training.
    pub fn training_device(&self) -> Result<Device> {
        Ok(self.backend()?.autodiff_device())
    }

    /// The plain device for inference.
    pub fn inference_device(&self) -> Result<Device> {
        Ok(self.backend()?.device())
    }
}
