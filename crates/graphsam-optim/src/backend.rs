//! Which burn backend runs the tensors: in burn 0.22 that is a device value,
//! so switching backends (or turning on a GPU) changes no types, only the
//! device and the cargo feature that compiles the backend in.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A compute backend compiled into this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputeBackend {
    /// burn-flex on the CPU (feature `flex`, default; the faster one).
    #[cfg(feature = "flex")]
    Flex,
    /// burn-ndarray on the CPU (feature `ndarray`, default).
    #[cfg(feature = "ndarray")]
    NdArray,
    /// wgpu (Vulkan on Linux) on the best adapter (feature `wgpu`).
    #[cfg(feature = "wgpu")]
    Wgpu,
}

impl ComputeBackend {
    /// Every backend compiled in, fastest CPU backend first.
    pub fn available() -> Vec<ComputeBackend> {
        vec![
            #[cfg(feature = "flex")]
            ComputeBackend::Flex,
            #[cfg(feature = "ndarray")]
            ComputeBackend::NdArray,
            #[cfg(feature = "wgpu")]
            ComputeBackend::Wgpu,
        ]
    }

    /// The CPU backend measured fastest for small dense models on 2 cores
    /// (see the crate README): flex when compiled in, else ndarray.
    pub fn default_cpu() -> ComputeBackend {
        Self::available()
            .into_iter()
            .next()
            .expect("graphsam-optim is built with at least one backend feature")
    }

    /// The CLI name: `ndarray`, `flex` or `wgpu`.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "ndarray")]
            ComputeBackend::NdArray => "ndarray",
            #[cfg(feature = "flex")]
            ComputeBackend::Flex => "flex",
            #[cfg(feature = "wgpu")]
            ComputeBackend::Wgpu => "wgpu",
        }
    }

    /// The device without autodiff (inference).
    #[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; we measured both.
    pub fn device(self) -> Device {
        match self {
            #[cfg(feature = "ndarray")]
            ComputeBackend::NdArray => Device::ndarray(),
            #[cfg(feature = "flex")]
            ComputeBackend::Flex => Device::flex(),
            #[cfg(feature = "wgpu")]
            ComputeBackend::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        }
    }

    /// The device with autodiff, for training.
    pub fn autodiff_device(self) -> Device {
        self.device().autodiff()
    }
}

impl fmt::Display for ComputeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is unknown or not compiled into this build.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("backend `{name}` is not available; this build has: {available}")]
pub struct UnknownBackend {
    /// The name asked for.
    pub name: String,
    /// The names compiled in, comma-separated.
    pub available: String,
}

impl FromStr for ComputeBackend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::available()
            .into_iter()
            .find(|b| b.name() == wanted)
            .ok_or_else(|| UnknownBackend {
                name: s.to_string(),
                available: Self::available()
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}
