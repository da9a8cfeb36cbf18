//! Which backend a model runs on: `WGTRAIN_DEVICE` or the same choice in the API.

use crate::backend::Backend;
use crate::cpu::CpuBackend;
use crate::error::{Error, Result};
use crate::gpu::{self, GpuApi, WgpuBackend};
use std::fmt;
use std::str::FromStr;

/// The environment variable read by [`Device::from_env`].
pub const DEVICE_ENV: &str = "WGTRAIN_DEVICE";

/// On a machine without a desktop session (`XDG_RUNTIME_DIR` unset: a server, a container, CI), Mesa's
/// Vulkan device-select layer looks for a Wayland display while adapters are enumerated, and the Wayland
/// client library prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` twice, which
/// reads as a failure. There is no display for the layer to pick a GPU for, so this turns the layer off
/// (`NODEVICE_SELECT=1`) for this process, unless the user set any of its variables. wgtrain ranks
/// adapters itself. Call it first thing in `main`, before any thread starts: it sets an environment
/// variable.
pub fn quiet_headless_drivers() {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let headless = !set("XDG_RUNTIME_DIR") && !set("WAYLAND_DISPLAY");
    let user_chose = set("NODEVICE_SELECT") || set("MESA_VK_DEVICE_SELECT") || set("DRI_PRIME");
    if headless && !user_chose {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// Where to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Device {
    /// The best hardware GPU, else the CPU backend (far faster than a software adapter).
    #[default]
    Auto,
    /// A hardware GPU adapter; an error if there is none.
    Gpu,
    /// wgpu's fallback (software) adapter: lavapipe on Linux, WARP on Windows.
    Fallback,
    /// The CPU backend.
    Cpu,
    /// The adapter at this index of [`crate::gpu::adapter_summaries`] (`gpu:N`; software adapters
    /// count). Parsing a part of an adapter name resolves it to its index.
    Adapter(usize),
    /// The best adapter of one graphics API (`vulkan`, `metal`, `dx12`, `gl`): hardware before software.
    /// `gl` is how the GL backend is reached where Vulkan also has an adapter.
    Api(GpuApi),
}

/// What a device value may be, for messages.
pub(crate) const EXPECTED: &str =
    "auto, gpu, gpu:N, fallback, cpu, vulkan, metal, dx12, gl or part of an adapter name";

impl Device {
    /// Reads `WGTRAIN_DEVICE`; unset or empty means [`Device::Auto`].
    pub fn from_env() -> Result<Device> {
        if let Err(std::env::VarError::NotUnicode(value)) = std::env::var(DEVICE_ENV) {
            return Err(Error::value(
                DEVICE_ENV,
                format!(
                    "{}, not text; expected {EXPECTED}",
                    crate::error::quote(&value.to_string_lossy())
                ),
            ));
        }
        match std::env::var(DEVICE_ENV) {
            Ok(value) if !value.trim().is_empty() => value.trim().parse().map_err(|e| match e {
                Error::InvalidValue { message, .. } => Error::value(DEVICE_ENV, message),
                other => other,
            }),
            _ => Ok(Device::Auto),
        }
    }

    /// Opens the backend and logs one line naming it, the adapter, the driver and the wgpu backend.
    pub fn open(self) -> Result<Box<dyn Backend>> {
        let backend: Box<dyn Backend> = match self {
            Device::Cpu => Box::new(CpuBackend::new()),
            Device::Gpu => Box::new(WgpuBackend::new(gpu::hardware_adapter()?)?),
            Device::Fallback => Box::new(WgpuBackend::new(gpu::fallback_adapter()?)?),
            Device::Adapter(index) => Box::new(WgpuBackend::new(gpu::adapter_at(index)?)?),
            Device::Api(api) => Box::new(WgpuBackend::new(gpu::api_adapter(api)?)?),
            Device::Auto => match gpu::hardware_adapter().and_then(WgpuBackend::new) {
                Ok(backend) => Box::new(backend),
                Err(Error::NoAdapter(_)) => Box::new(CpuBackend::new()),
                Err(e) => {
                    log::warn!(
                        "wgtrain: the hardware GPU could not be opened ({e}); using the CPU"
                    );
                    Box::new(CpuBackend::new())
                }
            },
        };
        log::info!("wgtrain device {self}: {}", backend.info());
        Ok(backend)
    }

    /// `auto`, `gpu`, `fallback`, `cpu`, `gpu:N` or an API's keyword.
    pub fn name(self) -> String {
        match self {
            Device::Auto => "auto".into(),
            Device::Gpu => "gpu".into(),
            Device::Fallback => "fallback".into(),
            Device::Cpu => "cpu".into(),
            Device::Adapter(index) => format!("gpu:{index}"),
            Device::Api(api) => api.name().into(),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Device {
    type Err = Error;

    /// The keywords win over adapter names; `gpu:N` is checked against the adapters when opened; any
    /// other text is looked up among the adapters' names now (see [`gpu::find_adapter`]).
    fn from_str(s: &str) -> Result<Self> {
        if let Some(api) = GpuApi::ALL.into_iter().find(|api| api.name() == s) {
            return Ok(Device::Api(api));
        }
        match s {
            "auto" => Ok(Device::Auto),
            "gpu" => Ok(Device::Gpu),
            "fallback" => Ok(Device::Fallback),
            "cpu" => Ok(Device::Cpu),
            "" => Err(Error::value(
                "device",
                format!("empty, expected {EXPECTED}"),
            )),
            other => match other.strip_prefix("gpu:") {
                Some(index) => index.parse().map(Device::Adapter).map_err(|_| {
                    Error::value(
                        "device",
                        format!(
                            "{}: gpu:N needs the index N of an adapter in `wgtrain devices`",
                            crate::error::quote(other)
                        ),
                    )
                }),
                None => gpu::find_adapter(other).map(Device::Adapter),
            },
        }
    }
}
