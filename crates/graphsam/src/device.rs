//! Which burn backend runs the tensors: in burn 0.22 that is a device value,
//! so switching backends (or turning on a GPU) changes no types, only the
//! device and the cargo feature that compiles the backend in.
//!
//! The CPU backends (flex and ndarray) are always compiled in (the
//! workspace's burn features); wgpu comes with the `gpu` feature (on by
//! default). CPU devices need no set-up. A GPU device goes through
//! [`ComputeBackend::init`], which asks wgpu for the adapter once per process
//! and turns "no adapter" into an error instead of a panic deep in a kernel.
//!
//! This is graphsam's, not graphsam-optim's: the optimizers take whatever
//! device the model is on and probe nothing.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// Which wgpu adapter a GPU backend runs on.
///
/// Defined in every build so a command line can name it even where the
/// `gpu` feature is off (and then be told so).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuAdapter {
    /// The adapter wgpu ranks best: a high-power GPU first. The variable
    /// `CUBECL_WGPU_DEFAULT_DEVICE` (e.g. `DiscreteGpu(1)`) overrides it.
    Best,
    /// The N-th discrete GPU (0-based), in wgpu's enumeration order.
    Discrete(usize),
    /// A software Vulkan implementation such as Mesa's lavapipe: slower
    /// than the CPU backends, it exists to test the GPU code path on a
    /// machine without a GPU.
    Software,
}

impl fmt::Display for GpuAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuAdapter::Best => f.write_str("the best adapter"),
            GpuAdapter::Discrete(n) => write!(f, "discrete GPU {n}"),
            GpuAdapter::Software => f.write_str("a software (CPU) Vulkan adapter"),
        }
    }
}

/// A compute backend compiled into this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputeBackend {
    /// burn-flex on the CPU (the default; the faster one).
    Flex,
    /// burn-ndarray on the CPU.
    NdArray,
    /// wgpu (Vulkan on Linux, Metal on macOS, DX12 on Windows) on the given
    /// adapter (feature `gpu`).
    #[cfg(feature = "gpu")]
    Wgpu(GpuAdapter),
}

/// A device ready for tensors, with what runs it.
#[derive(Clone, Debug)]
pub struct ReadyDevice {
    /// The burn device (without autodiff).
    pub device: Device,
    /// Human-readable hardware, e.g. `flex (CPU)` or
    /// `wgpu: NVIDIA H100 80GB HBM3 (Vulkan, DiscreteGpu, driver 550.54)`.
    pub description: String,
    /// True when a "GPU" adapter is really a software renderer on the CPU.
    pub software: bool,
}

/// The graphics API GPU compute runs on, as wgpu is asked for it.
#[cfg(target_os = "linux")]
const GPU_API: &str = "Vulkan";
#[cfg(target_os = "macos")]
const GPU_API: &str = "Metal";
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
const GPU_API: &str = "Vulkan, Metal, DX12 or GL";
#[cfg(target_os = "linux")]
const GPU_HINT: &str = " (`vulkaninfo --summary` lists the adapters the system offers; Mesa's \
                        lavapipe, package mesa-vulkan-drivers, is a software one)";
#[cfg(not(target_os = "linux"))]
const GPU_HINT: &str = "";

/// A backend that cannot run here: not compiled in, or no adapter found.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BackendUnavailable {
    /// The build lacks the cargo feature.
    #[error("backend `{name}` is not available; this build has: {available}")]
    NotCompiled {
        /// The name asked for.
        name: String,
        /// The names compiled in, comma-separated.
        available: String,
    },
    /// wgpu found no adapter matching the request, or could not open it.
    #[error(
        "no GPU for {adapter}: wgpu looked for a {api} adapter and got: {reason}. Check that a \
         GPU driver with {api} support is installed{hint}",
        api = GPU_API,
        hint = GPU_HINT
    )]
    NoAdapter {
        /// What was asked for.
        adapter: GpuAdapter,
        /// wgpu's own words.
        reason: String,
    },
}

impl ComputeBackend {
    /// Every backend compiled in, fastest CPU backend first; a compiled-in
    /// GPU backend last (as [`GpuAdapter::Best`]), whether or not this
    /// machine has an adapter for it.
    pub fn available() -> Vec<ComputeBackend> {
        vec![
            ComputeBackend::Flex,
            ComputeBackend::NdArray,
            #[cfg(feature = "gpu")]
            ComputeBackend::Wgpu(GpuAdapter::Best),
        ]
    }

    /// The CPU backends compiled in, fastest first.
    pub fn cpu_backends() -> Vec<ComputeBackend> {
        Self::available()
            .into_iter()
            .filter(|b| b.is_cpu())
            .collect()
    }

    /// True for the CPU backends (flex, ndarray).
    pub fn is_cpu(self) -> bool {
        match self {
            ComputeBackend::Flex | ComputeBackend::NdArray => true,
            #[cfg(feature = "gpu")]
            ComputeBackend::Wgpu(_) => false,
        }
    }

    /// The CPU backend measured fastest for small dense models on 2 cores
    /// (see graphsam-optim's README): flex.
    pub fn default_cpu() -> ComputeBackend {
        ComputeBackend::Flex
    }

    /// The CLI name: `ndarray`, `flex` or `wgpu`.
    pub fn name(self) -> &'static str {
        match self {
            ComputeBackend::NdArray => "ndarray",
            ComputeBackend::Flex => "flex",
            #[cfg(feature = "gpu")]
            ComputeBackend::Wgpu(_) => "wgpu",
        }
    }

    /// The device without autodiff (inference).
    ///
    /// For a GPU backend this is burn's lazy handle: if no adapter exists,
    /// the first tensor operation panics. Call [`ComputeBackend::init`]
    /// first to get an error instead.
    #[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; we measured both.
    pub fn device(self) -> Device {
        match self {
            ComputeBackend::NdArray => Device::ndarray(),
            ComputeBackend::Flex => Device::flex(),
            #[cfg(feature = "gpu")]
            ComputeBackend::Wgpu(adapter) => match gpu::init(adapter) {
                Ok(ready) => ready.device,
                Err(_) => Device::wgpu(gpu::device_kind(adapter)),
            },
        }
    }

    /// The device with autodiff, for training.
    pub fn autodiff_device(self) -> Device {
        self.device().autodiff()
    }

    /// Opens the backend: for a GPU, asks wgpu for the adapter (once per
    /// process and adapter) and reports what was found; for a CPU backend,
    /// nothing can fail.
    pub fn init(self) -> Result<ReadyDevice, BackendUnavailable> {
        match self {
            #[cfg(feature = "gpu")]
            ComputeBackend::Wgpu(adapter) => gpu::init(adapter),
            cpu => Ok(ReadyDevice {
                device: cpu.device(),
                description: format!("{} (CPU)", cpu.name()),
                software: false,
            }),
        }
    }
}

#[cfg(feature = "gpu")]
mod gpu {
    //! The wgpu runtime can be initialised once per adapter and process, so
    //! the outcome (device or error) is kept for every later caller.

    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    #[cfg(target_os = "linux")]
    use burn::tensor::wgpu::WgpuBackend;
    use burn::tensor::wgpu::wgpu::DeviceType;
    use burn::tensor::{Device, DeviceKind};

    use super::{BackendUnavailable, GpuAdapter, ReadyDevice};

    type Outcome = Result<ReadyDevice, BackendUnavailable>;

    pub(super) fn device_kind(adapter: GpuAdapter) -> DeviceKind {
        match adapter {
            GpuAdapter::Best => DeviceKind::DefaultDevice,
            GpuAdapter::Discrete(n) => DeviceKind::DiscreteGpu(n),
            GpuAdapter::Software => DeviceKind::Cpu,
        }
    }

    pub(super) fn init(adapter: GpuAdapter) -> Outcome {
        static OPENED: OnceLock<Mutex<HashMap<GpuAdapter, Outcome>>> = OnceLock::new();
        let mut opened = OPENED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        opened
            .entry(adapter)
            .or_insert_with(|| open(adapter))
            .clone()
    }

    fn open(adapter: GpuAdapter) -> Outcome {
        let options = Device::wgpu_options().device_kind(device_kind(adapter));
        // On Linux, compute runs on Vulkan: pinning it also keeps wgpu from
        // probing EGL, whose Mesa driver complains on headless machines.
        #[cfg(target_os = "linux")]
        let options = options.graphics_api(WgpuBackend::Vulkan);
        let (device, setup) =
            options
                .init_with_setup()
                .map_err(|e| BackendUnavailable::NoAdapter {
                    adapter,
                    reason: e.to_string(),
                })?;
        let info = setup.adapter.get_info();
        let driver = [info.driver.as_str(), info.driver_info.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ReadyDevice {
            device,
            description: format!(
                "wgpu: {} ({:?}, {:?}{})",
                info.name,
                info.backend,
                info.device_type,
                if driver.is_empty() {
                    String::new()
                } else {
                    format!(", driver {driver}")
                }
            ),
            software: info.device_type == DeviceType::Cpu,
        })
    }
}

impl fmt::Display for ComputeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ComputeBackend {
    type Err = BackendUnavailable;

    /// `flex`, `ndarray` or `wgpu` (the best adapter).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::available()
            .into_iter()
            .find(|b| b.name() == wanted)
            .ok_or_else(|| BackendUnavailable::NotCompiled {
                name: s.to_string(),
                available: Self::available()
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_backend() {
        for backend in ComputeBackend::available() {
            assert_eq!(backend.name().parse::<ComputeBackend>().unwrap(), backend);
            assert_eq!(backend.to_string(), backend.name());
        }
        assert_eq!(
            " Flex ".parse::<ComputeBackend>().unwrap(),
            ComputeBackend::Flex
        );
    }

    #[test]
    fn the_default_is_the_first_cpu_backend_and_cpu_devices_always_open() {
        assert_eq!(ComputeBackend::default_cpu(), ComputeBackend::Flex);
        assert_eq!(
            ComputeBackend::cpu_backends(),
            [ComputeBackend::Flex, ComputeBackend::NdArray]
        );
        for backend in ComputeBackend::cpu_backends() {
            assert!(backend.is_cpu());
            let ready = backend.init().unwrap();
            assert_eq!(ready.description, format!("{} (CPU)", backend.name()));
            assert!(!ready.software);
        }
    }

    #[test]
    fn an_unknown_backend_is_refused_with_the_available_ones() {
        let err = "tpu".parse::<ComputeBackend>().unwrap_err();
        let BackendUnavailable::NotCompiled { name, available } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(name, "tpu");
        assert!(available.starts_with("flex, ndarray"), "{available}");
        assert_eq!(available.contains("wgpu"), cfg!(feature = "gpu"));
    }
}
