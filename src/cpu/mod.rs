//! The CPU backend: every op's CPU reference (in `src/ops/`) run immediately on host memory. It is the
//! reference every GPU result is tested against and the fallback when no GPU adapter exists.

use crate::backend::{Backend, BufferId, Counters, DeviceInfo, KernelId, Op, Region};
use crate::error::{Error, Result};
use crate::host::pool::available_threads;
use crate::ops::{check_op, HostBuffers};

/// Runs ops immediately on host memory.
pub struct CpuBackend {
    info: DeviceInfo,
    host: HostBuffers,
    kernels: Vec<Op>,
    counters: Counters,
    /// Kernels ran since the last submit: a read then counts the submit a GPU would make for them.
    unsubmitted: bool,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// The processor's model name where the OS tells it (`/proc/cpuinfo` on Linux), else the architecture, so a
/// benchmark figure can be read in context.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("{} CPU", std::env::consts::ARCH))
}

/// The SIMD extensions this process detects at run time (sgemm picks its kernel from the same checks).
fn simd_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let found: Vec<&str> = [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("sse2", std::arch::is_x86_feature_detected!("sse2")),
        ]
        .into_iter()
        .filter_map(|(name, found)| found.then_some(name))
        .collect();
        found.join(" ")
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            "neon".into()
        } else {
            "none".into()
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "unknown".into()
    }
}

impl CpuBackend {
    /// A backend with no buffers yet, its [`DeviceInfo`] naming the processor and the SIMD extensions found.
    pub fn new() -> Self {
        CpuBackend {
            info: DeviceInfo {
                backend: "cpu".into(),
                adapter: format!(
                    "{} ({} threads available)",
                    cpu_model(),
                    available_threads()
                ),
                driver: format!("matrixmultiply sgemm; SIMD {}", simd_features()),
                api: "-".into(),
                device_type: "host".into(),
            },
            host: HostBuffers::default(),
            kernels: Vec::new(),
            counters: Counters::default(),
            unsubmitted: false,
        }
    }
}

impl Backend for CpuBackend {
    fn memory_limits(&self) -> crate::memory::MemoryLimits {
        crate::memory::MemoryLimits {
            max_buffer_bytes: isize::MAX as u64,
            available_bytes: crate::memory::host_available_bytes(),
            host_memory: true,
        }
    }

    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Per-sample products into NCHW: about 2× faster per CNN epoch than the batch-wide patch matrix and its
    /// transposes on the 2-core development machine (README, Performance).
    fn conv_algorithm(&self) -> crate::ops::ConvAlgorithm {
        crate::ops::ConvAlgorithm::Direct
    }

    fn alloc(&mut self, label: &str, len: usize) -> Result<BufferId> {
        self.host
            .buffers
            .push(crate::memory::zeros(&format!("buffer `{label}`"), len)?);
        self.counters.allocations += 1;
        self.counters.live_bytes += (len * 4) as u64;
        Ok(BufferId(self.host.buffers.len() - 1))
    }

    fn free(&mut self, buffer: BufferId) -> Result<()> {
        let buf = self
            .host
            .buffers
            .get_mut(buffer.0)
            .ok_or_else(|| Error::value("buffer", format!("{buffer:?} does not exist")))?;
        self.counters.live_bytes -= (buf.len() * 4) as u64;
        *buf = Vec::new();
        Ok(())
    }

    fn write(&mut self, buffer: BufferId, offset: usize, data: &[f32]) -> Result<()> {
        let buf = self
            .host
            .buffers
            .get_mut(buffer.0)
            .ok_or_else(|| Error::value("buffer", format!("{buffer:?} does not exist")))?;
        let end = offset + data.len();
        if end > buf.len() {
            return Err(Error::shape(
                "write",
                format!("at most {} floats", buf.len()),
                format!("{offset}..{end}"),
            ));
        }
        buf[offset..end].copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, region: Region) -> Result<Vec<f32>> {
        let len = self.host.buffers.get(region.buffer.0).map(Vec::len);
        match len {
            Some(len) if region.offset + region.len <= len => {
                self.counters.readbacks += 1;
                if std::mem::take(&mut self.unsubmitted) {
                    self.counters.submits += 1;
                }
                Ok(self.host.read(region, region.len).to_vec())
            }
            _ => Err(Error::value(
                "read",
                format!("{region:?} is outside its buffer"),
            )),
        }
    }

    fn prepare(&mut self, op: &Op) -> Result<KernelId> {
        check_op(op, |id| self.host.buffers.get(id.0).map(Vec::len))?;
        self.kernels.push(*op);
        Ok(KernelId(self.kernels.len() - 1))
    }

    fn enqueue(&mut self, kernel: KernelId) -> Result<()> {
        let op = *self
            .kernels
            .get(kernel.0)
            .ok_or_else(|| Error::value("kernel", format!("{kernel:?} was not prepared")))?;
        op.kernel().run_cpu(&mut self.host);
        self.unsubmitted = true;
        Ok(())
    }

    fn submit(&mut self) -> Result<()> {
        self.counters.submits += 1;
        self.unsubmitted = false;
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn profile(&mut self, kernels: &[KernelId]) -> Result<Option<Vec<(&'static str, f64)>>> {
        let mut times = Vec::with_capacity(kernels.len());
        for &kernel in kernels {
            let name =
                self.kernels.get(kernel.0).map(Op::name).ok_or_else(|| {
                    Error::value("kernel", format!("{kernel:?} was not prepared"))
                })?;
            let start = std::time::Instant::now();
            self.enqueue(kernel)?;
            times.push((name, start.elapsed().as_secs_f64() * 1e6));
        }
        self.submit()?;
        Ok(Some(times))
    }
}
