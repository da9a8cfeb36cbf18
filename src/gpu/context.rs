//! Adapter choice and device creation.

use crate::backend::DeviceInfo;
use crate::error::{Error, Result};

/// An instance for `backends`, unless `WGPU_BACKEND` names others (it and the other WGPU_* variables win).
fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = backends;
    wgpu::Instance::new(descriptor.with_env())
}

/// Vulkan, Metal and DX12 first; GL only where none of them has an adapter. Probing GL on a headless Linux
/// box wakes EGL's Wayland platform, which prints noise to stderr, so it is not touched when not needed.
fn adapters() -> Vec<wgpu::Adapter> {
    let primary = pollster::block_on(
        instance(wgpu::Backends::PRIMARY).enumerate_adapters(wgpu::Backends::all()),
    );
    if !primary.is_empty() {
        return primary;
    }
    pollster::block_on(
        instance(wgpu::Backends::SECONDARY).enumerate_adapters(wgpu::Backends::all()),
    )
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

/// Every adapter wgpu can see, for listings.
pub fn list_adapters() -> Vec<wgpu::AdapterInfo> {
    adapters().iter().map(wgpu::Adapter::get_info).collect()
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
