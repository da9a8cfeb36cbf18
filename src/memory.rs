//! What a model is about to allocate, checked against the device before anything is allocated: one buffer
//! must fit the device's largest buffer, and all of them its free memory where that is known (the host's
//! available memory for the CPU backend). Sizes are counted in `u128`, so no product can wrap.

use crate::error::{Error, Result};

/// How much a backend can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Bytes in one buffer (wgpu's `max_buffer_size`; the address space on the CPU).
    pub max_buffer_bytes: u64,
    /// Bytes free for new buffers, where the backend can know it (the host's `MemAvailable` on Linux).
    pub available_bytes: Option<u64>,
    /// Whether buffers live in host memory (the CPU backend), so host copies count against the same budget.
    pub host_memory: bool,
}

/// The host's available memory in bytes: `MemAvailable` of `/proc/meminfo` (Linux), else unknown.
pub fn host_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `12.5 GB (12500000000 bytes)`.
pub fn human_bytes(bytes: u128) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.1} GB ({bytes} bytes)")
    } else {
        format!("{:.1} MB ({bytes} bytes)", bytes as f64 / 1e6)
    }
}

/// Bytes of `floats` f32 values as a buffer holds them (whole vec4s, like the GPU backend).
pub fn buffer_bytes(floats: u128) -> u128 {
    floats.max(1).div_ceil(4) * 16
}

/// A set of buffers about to be allocated together.
pub struct Request<'a> {
    /// What they are for, e.g. `the parameters and their gradients`.
    pub purpose: &'a str,
    /// Each buffer's name and length in floats.
    pub buffers: Vec<(String, u128)>,
    /// Host memory needed beside them, in bytes (copies made on the way to the device).
    pub host_bytes: u128,
    /// Where the size comes from, e.g. `the largest layer is layer 1 (dense 4 → 4000000000) …`.
    pub detail: String,
}

/// Refuses `request` when one buffer exceeds the device's largest, or all of them (with the host bytes
/// where the device is the host) its available memory; `device` names the device in the message.
pub fn check(request: &Request, limits: &MemoryLimits, device: &str) -> Result<()> {
    let device_is_host = limits.host_memory;
    let detail = if request.detail.is_empty() {
        String::new()
    } else {
        format!("; {}", request.detail)
    };
    for (name, floats) in &request.buffers {
        let bytes = buffer_bytes(*floats);
        if bytes > u128::from(limits.max_buffer_bytes) {
            return Err(Error::Memory(format!(
                "{} need {} in buffer `{name}`, but {device} allows at most {} in one buffer{detail}",
                request.purpose,
                human_bytes(bytes),
                human_bytes(limits.max_buffer_bytes.into()),
            )));
        }
    }
    let device_bytes: u128 = request.buffers.iter().map(|(_, f)| buffer_bytes(*f)).sum();
    let mut budgets = vec![(device_bytes, limits.available_bytes, device.to_string())];
    if device_is_host {
        budgets[0].0 += request.host_bytes;
    } else if request.host_bytes > 0 {
        budgets.push((
            request.host_bytes,
            host_available_bytes(),
            "the host".into(),
        ));
    }
    for (total, available, on) in budgets {
        if let Some(available) = available.filter(|&a| total > u128::from(a)) {
            return Err(Error::Memory(format!(
                "{} need {}, but {on} has {} of memory available{detail}",
                request.purpose,
                human_bytes(total),
                human_bytes(available.into()),
            )));
        }
    }
    Ok(())
}

/// A `Vec` of `len` zeros, or an error naming `what` when the allocator refuses.
pub fn zeros(what: &str, len: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::Memory(format!(
            "{what} need {}, which could not be allocated",
            human_bytes(len as u128 * 4)
        ))
    })?;
    v.resize(len, 0.0);
    Ok(v)
}
