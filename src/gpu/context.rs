//! Adapter choice and device creation.

use crate::backend::DeviceInfo;
use crate::error::{Error, Result};

/// An instance for `backends`, unless `WGPU_BACKEND` names others (it and the other WGPU_* variables win).
fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = backends;
    wgpu::Instance::new(descriptor.with_env())
}

/// Vulkan, Metal and DX12 first; GL only where none of them has an adapter. A plain run (`auto`, `gpu`,
/// `fallback`) looks no further: GL lists the same GPUs again, through a slower path, and probing EGL is
/// work a run does not need.
fn adapters() -> Vec<wgpu::Adapter> {
    let primary = enumerate(wgpu::Backends::PRIMARY);
    if !primary.is_empty() {
        return primary;
    }
    enumerate(wgpu::Backends::SECONDARY)
}

/// Every adapter of every API: Vulkan, Metal and DX12 first, then GL. What `wgtrain devices` lists and
/// `gpu:N` counts in, so a GL adapter can be named too; the indices of the native adapters do not change.
fn all_adapters() -> Vec<wgpu::Adapter> {
    let mut all = enumerate(wgpu::Backends::PRIMARY);
    all.extend(enumerate(wgpu::Backends::SECONDARY));
    all
}

fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance(backends).enumerate_adapters(backends))
}

/// Lower is better: discrete before integrated before virtual GPUs.
fn hardware_rank(info: &wgpu::AdapterInfo) -> Option<u8> {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => Some(0),
        wgpu::DeviceType::IntegratedGpu => Some(1),
        wgpu::DeviceType::VirtualGpu => Some(2),
        wgpu::DeviceType::Cpu | wgpu::DeviceType::Other => None,
    }
}

/// Prefers the native APIs over GL for the same GPU.
fn api_rank(backend: wgpu::Backend) -> u8 {
    match backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// One adapter as `wgtrain devices` lists it: its place in the list (`--device gpu:N`), what it is, and
/// the limits that decide what fits on it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AdapterSummary {
    /// Place in the list, from 0: the `N` of `--device gpu:N`.
    pub index: usize,
    /// The adapter's name as the driver reports it.
    pub name: String,
    /// The graphics API: vulkan, metal, dx12 or gl.
    pub api: String,
    /// discrete, integrated, virtual, cpu (a software adapter) or other.
    pub device_type: String,
    /// The driver's name and version information, as wgpu reports them (may be empty).
    pub driver: String,
    /// Largest buffer, and largest storage binding, in bytes.
    pub max_buffer_size: u64,
    /// Largest range of a buffer one shader binding may see, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Most invocations in one compute workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Most workgroup-shared memory one compute shader may use, in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Whether the adapter can time kernels (wgpu's `TIMESTAMP_QUERY`), which the benchmark uses.
    pub timestamp_queries: bool,
}

/// Every adapter in `wgtrain devices` order: the order `--device gpu:N` counts in.
pub fn adapter_summaries() -> Vec<AdapterSummary> {
    all_adapters()
        .iter()
        .enumerate()
        .map(|(index, adapter)| {
            let info = describe(&adapter.get_info());
            let limits = adapter.limits();
            AdapterSummary {
                index,
                name: info.adapter,
                api: info.api,
                device_type: info.device_type,
                driver: info.driver,
                max_buffer_size: limits.max_buffer_size,
                max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
                max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
                max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
                timestamp_queries: adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY),
            }
        })
        .collect()
}

/// The adapter at `index` of [`adapter_summaries`].
pub fn adapter_at(index: usize) -> Result<wgpu::Adapter> {
    let mut all = all_adapters();
    let count = all.len();
    if index >= count {
        return Err(Error::value(
            "device",
            format!(
                "gpu:{index}, and wgpu sees {count} adapter{} (`wgtrain devices` lists them)",
                if count == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(all.swap_remove(index))
}

/// The index of the adapter whose name contains `text` (ignoring case); among several, the one `auto`
/// would rank first (hardware before software, native APIs before GL), else the first listed.
pub fn find_adapter(text: &str) -> Result<usize> {
    let wanted = text.to_lowercase();
    let all = all_adapters();
    let infos: Vec<wgpu::AdapterInfo> = all.iter().map(wgpu::Adapter::get_info).collect();
    infos
        .iter()
        .enumerate()
        .filter(|(_, info)| info.name.to_lowercase().contains(&wanted))
        .min_by_key(|(i, info)| (hardware_rank(info).unwrap_or(3), api_rank(info.backend), *i))
        .map(|(i, _)| i)
        .ok_or_else(|| {
            let names: Vec<String> = infos.iter().map(|i| crate::error::quote(&i.name)).collect();
            Error::value(
                "device",
                format!(
                    "no adapter name contains {} (adapters: {}); expected {}",
                    crate::error::quote(text),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    },
                    crate::device::EXPECTED
                ),
            )
        })
}

/// Every adapter wgpu can see, for listings.
pub fn list_adapters() -> Vec<wgpu::AdapterInfo> {
    all_adapters().iter().map(wgpu::Adapter::get_info).collect()
}

/// The best hardware (non-software) adapter.
pub fn hardware_adapter() -> Result<wgpu::Adapter> {
    adapters()
        .into_iter()
        .filter_map(|adapter| {
            let info = adapter.get_info();
            hardware_rank(&info).map(|rank| ((rank, api_rank(info.backend)), adapter))
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, adapter)| adapter)
        .ok_or_else(|| Error::NoAdapter("hardware GPU".into()))
}

/// The best adapter of one graphics API (`--device gl`, `vulkan`, `metal`, `dx12`): hardware before
/// software, discrete before integrated. Only that API is probed.
pub fn api_adapter(api: GpuApi) -> Result<wgpu::Adapter> {
    if let Some(allowed) = wgpu::Backends::from_env() {
        if !allowed.contains(api.backends()) {
            return Err(Error::value(
                "device",
                format!(
                    "{}, but WGPU_BACKEND={} leaves that API out",
                    api.name(),
                    std::env::var("WGPU_BACKEND").unwrap_or_default()
                ),
            ));
        }
    }
    enumerate(api.backends())
        .into_iter()
        .enumerate()
        .min_by_key(|(i, adapter)| (hardware_rank(&adapter.get_info()).unwrap_or(3), *i))
        .map(|(_, adapter)| adapter)
        .ok_or_else(|| Error::NoAdapter(api.name().into()))
}

/// A graphics API wgpu runs compute on, for picking an adapter by API rather than by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GpuApi {
    /// Vulkan (Linux, Windows, Android; lavapipe is a Vulkan driver).
    Vulkan,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
    /// OpenGL or OpenGL ES (EGL, WGL), WGSL translated to GLSL: where no other API is, and Mesa's llvmpipe
    /// without a display.
    Gl,
}

impl GpuApi {
    /// Every API, in the order the keywords are listed.
    pub const ALL: [GpuApi; 4] = [GpuApi::Vulkan, GpuApi::Metal, GpuApi::Dx12, GpuApi::Gl];

    /// The `--device` keyword, as `wgtrain devices` prints the API.
    pub fn name(self) -> &'static str {
        match self {
            GpuApi::Vulkan => "vulkan",
            GpuApi::Metal => "metal",
            GpuApi::Dx12 => "dx12",
            GpuApi::Gl => "gl",
        }
    }

    fn backends(self) -> wgpu::Backends {
        match self {
            GpuApi::Vulkan => wgpu::Backends::VULKAN,
            GpuApi::Metal => wgpu::Backends::METAL,
            GpuApi::Dx12 => wgpu::Backends::DX12,
            GpuApi::Gl => wgpu::Backends::GL,
        }
    }
}

/// wgpu's fallback adapter (a software rasteriser such as lavapipe or WARP).
pub fn fallback_adapter() -> Result<wgpu::Adapter> {
    let options = wgpu::RequestAdapterOptions {
        force_fallback_adapter: true,
        ..Default::default()
    };
    let request = |backends| pollster::block_on(instance(backends).request_adapter(&options));
    request(wgpu::Backends::PRIMARY)
        .or_else(|_| request(wgpu::Backends::SECONDARY))
        .map_err(|e| Error::NoAdapter(format!("fallback (software) ({e})")))
}

pub(crate) fn describe(info: &wgpu::AdapterInfo) -> DeviceInfo {
    let device_type = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    };
    DeviceInfo {
        backend: "wgpu".into(),
        adapter: info.name.clone(),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        api: info.backend.to_str().to_string(),
        device_type: device_type.into(),
    }
}

/// Opens a device with the adapter's own limits, so large layers are not held to wgpu's defaults.
pub(crate) fn open_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue)> {
    let descriptor = wgpu::DeviceDescriptor {
        label: Some("wgtrain"),
        // Timestamps let the benchmark time each kernel; nothing else depends on them.
        required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    };
    pollster::block_on(adapter.request_device(&descriptor))
        .map_err(|e| Error::Gpu(format!("could not open {}: {e}", adapter.get_info().name)))
}
