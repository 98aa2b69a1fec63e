//! Choosing the compute device at run time.

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;

/// The devices the `gaze` binary runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The CPU, through Burn's `flex` backend.
    #[default]
    Cpu,
    /// Any GPU through WGPU (Vulkan, Metal, DX12 or GL; Mesa's lavapipe without a GPU).
    Wgpu,
    /// NVIDIA GPUs through Burn's CUDA backend (the `cuda` cargo feature).
    #[cfg(feature = "cuda")]
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu),
            #[cfg(feature = "cuda")]
            "cuda" => Ok(DeviceChoice::Cuda),
            other => Err(format!("unknown device '{other}'; use cpu or wgpu")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => "cuda",
        })
    }
}

impl DeviceChoice {
    /// Opens the device; for WGPU, checks that an adapter exists and turns the backend's panic
    /// into an error when none does.
    pub fn open(self) -> Result<Device, String> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Ok(Device::cuda(0usize)),
            DeviceChoice::Wgpu => {
                let probe = || {
                    let device = Device::wgpu(DeviceKind::DefaultDevice);
                    let _ = Tensor::<1>::zeros([1], &device).into_data();
                    device
                };
                let previous = std::panic::take_hook();
                std::panic::set_hook(Box::new(|_| {}));
                let result = std::panic::catch_unwind(probe);
                std::panic::set_hook(previous);
                result.map_err(|payload| {
                    let why = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("no WGPU adapter could be opened ({why}); on Linux without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers) or use --device cpu")
                })
            }
        }
    }

    /// `n` devices of this kind for data-parallel training: GPUs 0..n (WGPU: the discrete GPUs
    /// in the adapter list; CUDA: the device ordinals). The CPU is one device.
    pub fn open_many(self, n: usize) -> Result<Vec<Device>, String> {
        match (self, n) {
            (_, 0) => Err("--devices must be at least 1".into()),
            (_, 1) => Ok(vec![self.open()?]),
            (DeviceChoice::Cpu, _) => Err(
                "the CPU is one device (its backend already uses every core); use --devices with --device wgpu or cuda".into(),
            ),
            (DeviceChoice::Wgpu, n) => {
                self.open()?;
                Ok((0..n).map(|i| Device::wgpu(DeviceKind::DiscreteGpu(i))).collect())
            }
            #[cfg(feature = "cuda")]
            (DeviceChoice::Cuda, n) => Ok((0..n).map(|i| Device::cuda(i)).collect()),
        }
    }
}
