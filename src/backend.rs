//! The one seam between the backend-free model and a device. A backend owns buffers of f32, turns an [`Op`]
//! into a prepared kernel once, and runs prepared kernels in the order they are enqueued. What an op
//! computes, binds and dispatches lives with the op in `src/ops/` (see [`crate::ops::Kernel`]).

use crate::error::Result;
pub use crate::ops::loss::STATS_LEN;
pub use crate::ops::{BufferId, Op, Region};

/// A kernel prepared by [`Backend::prepare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelId(pub(crate) usize);

/// What the engine counted, for tests and benchmarks: a training step must add one submit and nothing else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Command submissions to the device queue (the CPU backend counts calls to `submit`).
    pub submits: u64,
    /// Blocking reads of device memory back to the host.
    pub readbacks: u64,
    /// Buffers, bind groups and pipelines created.
    pub allocations: u64,
    /// Bytes of device memory held by live buffers (for the CPU backend, host memory in its buffers).
    pub live_bytes: u64,
}

/// Which backend and adapter a model runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `cpu` or `wgpu`.
    pub backend: String,
    /// Adapter name (`llvmpipe (LLVM 15.0.6, 256 bits)`, ...) or the CPU backend's description.
    pub adapter: String,
    /// Driver name and version as the adapter reports them.
    pub driver: String,
    /// wgpu backend (`vulkan`, `metal`, `dx12`, `gl`) or `-`.
    pub api: String,
    /// Adapter type (`discrete`, `integrated`, `cpu`, ...) or `host`.
    pub device_type: String,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backend={} adapter=\"{}\" driver=\"{}\" api={} type={}",
            self.backend, self.adapter, self.driver, self.api, self.device_type
        )
    }
}

/// A device that stores buffers and runs [`Op`]s. The only CPU/GPU seam.
pub trait Backend {
    /// The backend and adapter in use.
    fn info(&self) -> &DeviceInfo;
    /// Allocates a zero-filled buffer of `len` floats.
    fn alloc(&mut self, label: &str, len: usize) -> Result<BufferId>;
    /// Releases a buffer's memory; kernels prepared on it must not be enqueued again.
    fn free(&mut self, buffer: BufferId) -> Result<()>;
    /// Copies `data` into `buffer` at float `offset`, ordered after every kernel enqueued before it.
    fn write(&mut self, buffer: BufferId, offset: usize, data: &[f32]) -> Result<()>;
    /// Runs what is enqueued, then reads `region` back to the host.
    fn read(&mut self, region: Region) -> Result<Vec<f32>>;
    /// Checks `op` and builds what running it needs (pipeline state, bindings, shape uniforms), once.
    fn prepare(&mut self, op: &Op) -> Result<KernelId>;
    /// Appends a prepared kernel to the pending work.
    fn enqueue(&mut self, kernel: KernelId) -> Result<()>;
    /// Sends the pending work to the device as one submission.
    fn submit(&mut self) -> Result<()>;
    /// What the backend counted so far.
    fn counters(&self) -> Counters;
    /// Runs `kernels` once, in order, timing each: `(op name, microseconds)`. `None` where the device cannot
    /// time its work (a GPU adapter without timestamp queries). Outside measured runs: it may allocate.
    fn profile(&mut self, kernels: &[KernelId]) -> Result<Option<Vec<(&'static str, f64)>>>;

    /// The largest buffer and the free memory, checked before a model allocates (see [`crate::memory`]).
    fn memory_limits(&self) -> crate::memory::MemoryLimits;

    /// The variant a prepared kernel runs (a matrix product's workgroup shape, `16x4`), where the backend
    /// chose one among several by measurement; for reports.
    fn kernel_variant(&self, kernel: KernelId) -> Option<String> {
        let _ = kernel;
        None
    }

    /// How conv layers run here by default: the way the bench measured faster on this kind of device.
    fn conv_algorithm(&self) -> crate::ops::ConvAlgorithm {
        crate::ops::ConvAlgorithm::PatchMatrix
    }

    /// The most floats one operand may span when bound whole (a GPU's storage binding limit).
    fn max_binding_len(&self) -> usize {
        usize::MAX
    }
}
