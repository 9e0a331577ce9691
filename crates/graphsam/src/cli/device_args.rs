//! `--device`: which compute backend runs the model.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Args;

use crate::device::{ComputeBackend, GpuAdapter, ReadyDevice};

/// Device flags.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// cpu (the fastest CPU backend, flex), cpu-ndarray, gpu (the best GPU wgpu finds), gpu:N
    /// (the N-th discrete GPU, 0-based) or gpu:software (a software Vulkan such as lavapipe,
    /// only to test the GPU path).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArgs {
    /// The compute backend the flag names (parsing only: no adapter is opened).
    pub fn backend(&self) -> Result<ComputeBackend> {
        let device = self.device.trim();
        match device {
            "cpu" => Ok(ComputeBackend::default_cpu()),
            "cpu-flex" | "flex" => Ok("flex".parse()?),
            "cpu-ndarray" | "ndarray" => Ok("ndarray".parse()?),
            d if d == "gpu" || d.starts_with("gpu:") => gpu_backend(d, parse_adapter(d)?),
            other => bail!(
                "unknown --device `{other}` (expected cpu, cpu-flex, cpu-ndarray, gpu, gpu:N or \
                 gpu:software)"
            ),
        }
    }

    /// Backend name for the run record: `flex`, `ndarray`, `wgpu`, `wgpu:N`
    /// or `wgpu:software`.
    pub fn name(&self) -> String {
        match self.backend() {
            Ok(backend) if backend.is_cpu() => backend.name().to_string(),
            Ok(_) => match parse_adapter(self.device.trim()) {
                Ok(GpuAdapter::Discrete(n)) => format!("wgpu:{n}"),
                Ok(GpuAdapter::Software) => "wgpu:software".to_string(),
                _ => "wgpu".to_string(),
            },
            Err(_) => self.device.clone(),
        }
    }

    /// Opens the device the flag names and says on stderr what runs the
    /// model (a software GPU adapter gets a warning: it is slower than the
    /// CPU backend).
    pub fn open(&self) -> Result<ReadyDevice> {
        let backend = self.backend()?;
        let ready = backend
            .init()
            .with_context(|| format!("--device {}", self.device))?;
        if !backend.is_cpu() {
            eprintln!("device: {}", ready.description);
            if ready.software
                && !matches!(parse_adapter(self.device.trim()), Ok(GpuAdapter::Software))
            {
                eprintln!(
                    "warning: the adapter wgpu picked is a software renderer on the CPU; \
                     `--device cpu` is much faster"
                );
            }
        }
        Ok(ready)
    }

    /// The autodiff device for training.
    pub fn training_device(&self) -> Result<Device> {
        Ok(self.open()?.device.autodiff())
    }

    /// The plain device for inference.
    pub fn inference_device(&self) -> Result<Device> {
        Ok(self.open()?.device)
    }
}

/// `gpu` → the best adapter, `gpu:N` → discrete GPU N, `gpu:software` → a
/// software Vulkan adapter.
fn parse_adapter(flag: &str) -> Result<GpuAdapter> {
    match flag.strip_prefix("gpu") {
        Some("") => Ok(GpuAdapter::Best),
        Some(rest) => {
            let which = rest.strip_prefix(':').unwrap_or(rest);
            match which {
                "software" | "cpu" => Ok(GpuAdapter::Software),
                n => n.parse().map(GpuAdapter::Discrete).map_err(|_| {
                    anyhow::anyhow!(
                        "--device {flag}: expected gpu, gpu:N with N a GPU index (0, 1, …) or \
                         gpu:software"
                    )
                }),
            }
        }
        None => bail!("--device {flag} does not name a GPU"),
    }
}

#[cfg(feature = "gpu")]
fn gpu_backend(_flag: &str, adapter: GpuAdapter) -> Result<ComputeBackend> {
    Ok(ComputeBackend::Wgpu(adapter))
}

#[cfg(not(feature = "gpu"))]
fn gpu_backend(flag: &str, adapter: GpuAdapter) -> Result<ComputeBackend> {
    bail!(
        "--device {flag}: this graphsam was built without GPU support, so {adapter} cannot be \
         used; rebuild with the `gpu` feature (on by default: drop `--no-default-features`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(device: &str) -> DeviceArgs {
        DeviceArgs {
            device: device.to_string(),
        }
    }

    #[test]
    fn gpu_flags_name_their_adapter() {
        assert_eq!(parse_adapter("gpu").unwrap(), GpuAdapter::Best);
        assert_eq!(parse_adapter("gpu:0").unwrap(), GpuAdapter::Discrete(0));
        assert_eq!(parse_adapter("gpu:3").unwrap(), GpuAdapter::Discrete(3));
        assert_eq!(parse_adapter("gpu:software").unwrap(), GpuAdapter::Software);
        let err = parse_adapter("gpu:first").unwrap_err().to_string();
        assert!(err.contains("gpu:N"), "{err}");
        let err = parse_adapter("gpu:-1").unwrap_err().to_string();
        assert!(err.contains("--device gpu:-1"), "{err}");
    }

    #[test]
    fn cpu_flags_pick_cpu_backends_and_unknown_flags_are_refused() {
        assert_eq!(
            flag("cpu").backend().unwrap(),
            ComputeBackend::default_cpu()
        );
        assert_eq!(flag("cpu").name(), "flex");
        assert_eq!(flag("cpu-ndarray").name(), "ndarray");
        let err = flag("tpu").backend().unwrap_err().to_string();
        assert!(err.contains("unknown --device `tpu`"), "{err}");
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn gpu_flags_name_the_wgpu_backend_in_the_run_record() {
        assert_eq!(flag("gpu").name(), "wgpu");
        assert_eq!(flag("gpu:1").name(), "wgpu:1");
        assert_eq!(flag("gpu:software").name(), "wgpu:software");
        assert!(!flag("gpu").backend().unwrap().is_cpu());
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn a_gpu_the_machine_lacks_is_an_error_naming_what_was_looked_for() {
        // No machine has a hundred discrete GPUs; wgpu must answer, not panic.
        let err = format!("{:#}", flag("gpu:99").open().unwrap_err());
        assert!(
            err.contains("--device gpu:99") && err.contains("no GPU for discrete GPU 99"),
            "{err}"
        );
        #[cfg(target_os = "linux")]
        assert!(err.contains("Vulkan adapter"), "{err}");
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn gpu_flags_in_a_cpu_only_build_say_how_to_get_gpu_support() {
        let err = flag("gpu:1").backend().unwrap_err().to_string();
        assert!(
            err.contains("built without GPU support") && err.contains("discrete GPU 1"),
            "{err}"
        );
    }
}
