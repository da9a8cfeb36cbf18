//! The wgpu backend: buffers live on the device, every op is a WGSL compute dispatch, and everything enqueued
//! between two submits goes to the queue as one command buffer with one compute pass.

mod context;
mod profile;
mod tune;

pub use context::{
    adapter_at, adapter_summaries, api_adapter, fallback_adapter, find_adapter, hardware_adapter,
    list_adapters, AdapterSummary, GpuApi,
};

/// The wgpu feature that lets [`Backend::profile`] time each kernel on this backend.
pub const TIMESTAMP_QUERY: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY;

use crate::backend::{Backend, BufferId, Counters, DeviceInfo, KernelId, Op, Region};
use crate::error::{Error, Result};
use crate::ops::launch::MAX_GROUPS_PER_DIM;
use crate::ops::{check_op, Shader};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// A prepared op: its pipeline and one dispatch per window (usually one).
struct Prepared {
    name: &'static str,
    /// The variant this kernel runs (a matmul's workgroup shape), for reports.
    variant: Option<String>,
    pipeline: wgpu::ComputePipeline,
    dispatches: Vec<Dispatch>,
}

struct Dispatch {
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    /// Keeps the shape uniform alive as long as the bind group that points at it.
    _dims: wgpu::Buffer,
}

/// Runs ops as WGSL compute shaders on one wgpu device.
pub struct WgpuBackend {
    info: DeviceInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    /// Pipelines by entry point and pipeline constants.
    pipelines: HashMap<String, wgpu::ComputePipeline>,
    /// Measured choices: each tuning key's fastest variant (see `tune.rs`).
    tuning: tune::Tuning,
    buffers: Vec<(wgpu::Buffer, usize)>,
    kernels: Vec<Prepared>,
    pending: Vec<KernelId>,
    /// Reused MAP_READ buffer for `read`; grows to the largest read.
    staging: Option<wgpu::Buffer>,
    /// Submissions that may still be running, oldest first; bounded by [`MAX_IN_FLIGHT`].
    in_flight: VecDeque<wgpu::SubmissionIndex>,
    /// The first error wgpu reported outside an error scope (validation, out of memory, device lost).
    device_error: Arc<Mutex<Option<String>>>,
    counters: Counters,
}

/// Size of the readback buffer made with the device; larger reads grow it.
const INITIAL_STAGING_BYTES: u64 = 64 << 10;

/// Submissions allowed to queue up before `submit` waits for the oldest. Without a bound the host can race
/// thousands of steps ahead of the device, holding their command buffers and staged uploads in memory.
const MAX_IN_FLIGHT: usize = 8;

fn byte_len(floats: usize) -> u64 {
    (floats * std::mem::size_of::<f32>()) as u64
}

impl WgpuBackend {
    /// Opens a device on `adapter` with the adapter's limits.
    pub fn new(adapter: wgpu::Adapter) -> Result<Self> {
        let info = context::describe(&adapter.get_info());
        let (device, queue) = context::open_device(&adapter)?;
        let device_error = Arc::new(Mutex::new(None::<String>));
        let slot = device_error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            slot.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e.to_string());
        }));
        let slot = device_error.clone();
        device.set_device_lost_callback(move |reason, message| {
            slot.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(format!("device lost ({reason:?}): {message}"));
        });
        // Made now, so the small reads of training (an epoch's loss) never allocate after the first step.
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: INITIAL_STAGING_BYTES,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(WgpuBackend {
            info,
            device,
            queue,
            modules: HashMap::new(),
            pipelines: HashMap::new(),
            tuning: tune::Tuning::default(),
            buffers: Vec::new(),
            kernels: Vec::new(),
            pending: Vec::new(),
            staging: Some(staging),
            in_flight: VecDeque::new(),
            device_error,
            counters: Counters {
                allocations: 1,
                live_bytes: INITIAL_STAGING_BYTES,
                ..Counters::default()
            },
        })
    }

    /// The wgpu device, for interop (and for fault tests, which destroy it to act out a lost GPU).
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    fn check_device(&self) -> Result<()> {
        match &*self.device_error.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(message) => Err(Error::Gpu(message.clone())),
            None => Ok(()),
        }
    }

    /// Runs `create` inside validation and out-of-memory error scopes and turns what they catch into errors.
    fn scoped<T>(&self, what: &str, create: impl FnOnce(&wgpu::Device) -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = create(&self.device);
        let invalid = pollster::block_on(validation.pop());
        let out_of_memory = pollster::block_on(oom.pop());
        match invalid.or(out_of_memory) {
            Some(e) => Err(Error::Gpu(format!("{what}: {e}"))),
            None => Ok(value),
        }
    }

    /// The pipeline of `entry` in `shader` built with `constants`, compiled on first use and kept.
    fn pipeline(
        &mut self,
        entry: &'static str,
        shader: &'static Shader,
        constants: &[(&'static str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let key = format!("{entry}{constants:?}");
        if let Some(pipeline) = self.pipelines.get(&key) {
            return Ok(pipeline.clone());
        }
        let stem = shader.stem;
        if !self.modules.contains_key(stem) {
            let source = shader.joined();
            let module = self.scoped(&format!("compiling {stem}.wgsl"), |device| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(stem),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                })
            })?;
            self.modules.insert(stem, module);
        }
        let module = &self.modules[stem];
        let pipeline = self.scoped(&format!("building pipeline {entry}"), |device| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            })
        })?;
        self.counters.allocations += 1;
        self.pipelines.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    fn binding(&self, region: Region) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: &self.buffers[region.buffer.0].0,
            offset: byte_len(region.offset),
            size: std::num::NonZeroU64::new(byte_len(region.len)),
        }
    }

    /// Checks what wgpu would reject with a message the user can act on.
    fn check_limits(&self, op: &Op, bindings: &[(u32, Region)], groups: [usize; 3]) -> Result<()> {
        let limits = self.device.limits();
        let align = limits.min_storage_buffer_offset_alignment as u64;
        for &(_, region) in bindings {
            if region.len == 0 {
                return Err(Error::shape(
                    format!("{} operand", op.name()),
                    "at least 1 float",
                    0,
                ));
            }
            if !byte_len(region.offset).is_multiple_of(align) {
                return Err(Error::shape(
                    format!("{} operand offset", op.name()),
                    format!("a multiple of {align} bytes"),
                    byte_len(region.offset),
                ));
            }
            let max = limits.max_storage_buffer_binding_size;
            if byte_len(region.len) > max {
                return Err(Error::shape(
                    format!("{} operand on {}", op.name(), self.info.adapter),
                    format!("at most {max} bytes per binding (the adapter's limit)"),
                    format!("{} bytes", byte_len(region.len)),
                ));
            }
        }
        if let Some(&too_many) = groups.iter().find(|&&g| g > MAX_GROUPS_PER_DIM) {
            // Only a matmul's rows can get here (8 per workgroup): a batch of over 524280 rows.
            return Err(Error::shape(
                format!("{} dispatch on {}", op.name(), self.info.adapter),
                format!(
                    "at most {MAX_GROUPS_PER_DIM} workgroups per dimension (fewer rows per batch)"
                ),
                too_many,
            ));
        }
        Ok(())
    }

    /// llvmpipe ends a shader invocation after 65535 loop iterations in total. Most long sums are split into
    /// windows (see [`crate::ops::Kernel::launches`]); the ops that need a whole row in one invocation are refused up
    /// front on it when the row is too long, rather than computing a wrong result.
    fn check_loop_budget(&self, op: &Op) -> Result<()> {
        const LLVMPIPE_LOOP_LIMIT: usize = 65535;
        if !self.info.adapter.contains("llvmpipe") {
            return Ok(());
        }
        let Some((what, cols, loops)) = op.kernel().row_loops() else {
            return Ok(());
        };
        if cols * loops > LLVMPIPE_LOOP_LIMIT {
            return Err(Error::shape(
                format!("{what} on {}", self.info.adapter),
                format!("at most {} values a row (it stops a shader after {LLVMPIPE_LOOP_LIMIT} loop iterations)", LLVMPIPE_LOOP_LIMIT / loops),
                cols,
            ));
        }
        Ok(())
    }

    /// Records the pending kernels into `encoder` as one compute pass.
    fn encode_pending(&mut self, encoder: &mut wgpu::CommandEncoder) {
        if self.pending.is_empty() {
            return;
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgtrain ops"),
            timestamp_writes: None,
        });
        for id in &self.pending {
            let kernel = &self.kernels[id.0];
            pass.set_pipeline(&kernel.pipeline);
            for dispatch in &kernel.dispatches {
                pass.set_bind_group(0, &dispatch.bind_group, &[]);
                let [x, y, z] = dispatch.groups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        drop(pass);
        self.pending.clear();
    }

    /// Submits `encoder`, bounding how far the host runs ahead of the device.
    fn submit_encoder(&mut self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let index = self.queue.submit([encoder.finish()]);
        self.counters.submits += 1;
        self.in_flight.push_back(index);
        if self.in_flight.len() > MAX_IN_FLIGHT {
            let oldest = self.in_flight.pop_front().expect("non-empty");
            self.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(oldest),
                    timeout: None,
                })
                .map_err(|e| Error::Gpu(format!("waiting for an earlier step: {e}")))?;
        }
        self.check_device()
    }

    /// Submits what is pending, if anything.
    /// Builds what running `op` exactly as given needs: its launches, pipeline and bind groups.
    fn prepare_variant(&mut self, op: &Op) -> Result<KernelId> {
        let max_binding = self.device.limits().max_storage_buffer_binding_size as usize / 4;
        let kernel = op.kernel();
        let launches = kernel.launches(max_binding);
        for launch in &launches {
            self.check_limits(op, &launch.bindings, launch.groups)?;
        }
        self.check_loop_budget(op)?;
        let pipeline = self.pipeline(kernel.name(), kernel.shader(), &kernel.constants())?;
        let layout = pipeline.get_bind_group_layout(0);
        let mut dispatches = Vec::with_capacity(launches.len());
        for launch in launches {
            let dims = self.scoped("allocating a shape uniform", |device| {
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(op.name()),
                    contents: bytemuck::bytes_of(&launch.dims),
                    usage: wgpu::BufferUsages::UNIFORM,
                })
            })?;
            let mut entries = Vec::new();
            if kernel.reads_dims() {
                entries.push(wgpu::BindGroupEntry {
                    binding: 0,
                    resource: dims.as_entire_binding(),
                });
            }
            for &(binding, region) in &launch.bindings {
                entries.push(wgpu::BindGroupEntry {
                    binding,
                    resource: wgpu::BindingResource::Buffer(self.binding(region)),
                });
            }
            let bind_group = self.scoped(&format!("binding {}", op.name()), |device| {
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(op.name()),
                    layout: &layout,
                    entries: &entries,
                })
            })?;
            self.counters.allocations += 2;
            self.counters.live_bytes += dims.size();
            dispatches.push(Dispatch {
                bind_group,
                groups: launch.groups.map(|g| g as u32),
                _dims: dims,
            });
        }
        self.kernels.push(Prepared {
            name: op.name(),
            variant: kernel.variant_name(),
            pipeline,
            dispatches,
        });
        Ok(KernelId(self.kernels.len() - 1))
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return self.check_device();
        }
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgtrain step"),
            });
        self.encode_pending(&mut encoder);
        self.submit_encoder(encoder)
    }
}

impl Backend for WgpuBackend {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn alloc(&mut self, label: &str, len: usize) -> Result<BufferId> {
        // Whole vec4s, so any region can be bound as array<vec4<f32>> too (see `vec4_view`).
        let size = byte_len(len.max(1).next_multiple_of(4));
        let max = self.device.limits().max_buffer_size;
        if size > max {
            return Err(Error::shape(
                format!("buffer `{label}` on {}", self.info.adapter),
                format!("at most {max} bytes (the adapter's limit)"),
                format!("{size} bytes"),
            ));
        }
        let buffer = self.scoped(&format!("allocating `{label}` ({size} bytes)"), |device| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })?;
        self.buffers.push((buffer, len));
        self.counters.allocations += 1;
        self.counters.live_bytes += size;
        Ok(BufferId(self.buffers.len() - 1))
    }

    fn free(&mut self, buffer: BufferId) -> Result<()> {
        let entry = self
            .buffers
            .get_mut(buffer.0)
            .ok_or_else(|| Error::value("buffer", format!("{buffer:?} does not exist")))?;
        if entry.1 > 0 {
            self.counters.live_bytes -= entry.0.size();
        }
        entry.0.destroy();
        entry.1 = 0;
        Ok(())
    }

    fn write(&mut self, buffer: BufferId, offset: usize, data: &[f32]) -> Result<()> {
        let &(ref target, len) = self
            .buffers
            .get(buffer.0)
            .ok_or_else(|| Error::value("buffer", format!("{buffer:?} does not exist")))?;
        if offset + data.len() > len {
            return Err(Error::shape(
                "write",
                format!("at most {len} floats"),
                format!("{offset}..{}", offset + data.len()),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        let target = target.clone();
        // queue.write_buffer lands before the next submission: run what is already enqueued first.
        self.flush()?;
        self.queue
            .write_buffer(&target, byte_len(offset), bytemuck::cast_slice(data));
        Ok(())
    }

    fn read(&mut self, region: Region) -> Result<Vec<f32>> {
        let len = self.buffers.get(region.buffer.0).map(|b| b.1);
        if !matches!(len, Some(len) if region.offset + region.len <= len) {
            return Err(Error::value(
                "read",
                format!("{region:?} is outside its buffer"),
            ));
        }
        if region.len == 0 {
            return Ok(Vec::new());
        }
        let size = byte_len(region.len);
        if self.staging.as_ref().is_none_or(|s| s.size() < size) {
            let staging = self.scoped("allocating the readback buffer", |device| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })?;
            self.counters.allocations += 1;
            self.counters.live_bytes += size;
            if let Some(old) = self.staging.take() {
                self.counters.live_bytes -= old.size();
            }
            self.staging = Some(staging);
        }
        let staging = self.staging.clone().expect("staging buffer exists");
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgtrain readback"),
            });
        // Whatever is still pending goes in the same submission, ahead of the copy.
        self.encode_pending(&mut encoder);
        encoder.copy_buffer_to_buffer(
            &self.buffers[region.buffer.0].0,
            byte_len(region.offset),
            &staging,
            0,
            size,
        );
        self.queue.submit([encoder.finish()]);
        self.counters.submits += 1;
        self.counters.readbacks += 1;
        self.check_device()?;

        let (sender, receiver) = std::sync::mpsc::channel();
        let slice = staging.slice(..size);
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for a readback: {e}")))?;
        self.in_flight.clear();
        self.check_device()?;
        receiver
            .recv()
            .map_err(|_| Error::Gpu("readback was dropped before it completed".into()))?
            .map_err(|e| Error::Gpu(format!("mapping the readback buffer: {e}")))?;
        let values = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading the readback buffer: {e}")))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(values)
    }

    fn prepare(&mut self, op: &Op) -> Result<KernelId> {
        check_op(op, |id| self.buffers.get(id.0).map(|b| b.1))?;
        let op = self.tuned(op)?;
        self.prepare_variant(&op)
    }

    fn enqueue(&mut self, kernel: KernelId) -> Result<()> {
        if kernel.0 >= self.kernels.len() {
            return Err(Error::value(
                "kernel",
                format!("{kernel:?} was not prepared"),
            ));
        }
        self.pending.push(kernel);
        Ok(())
    }

    fn submit(&mut self) -> Result<()> {
        self.flush()
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn memory_limits(&self) -> crate::memory::MemoryLimits {
        // wgpu does not report a device's free memory; allocation failures are caught as errors.
        crate::memory::MemoryLimits {
            max_buffer_bytes: self.device.limits().max_buffer_size,
            available_bytes: None,
            host_memory: false,
        }
    }

    fn max_binding_len(&self) -> usize {
        self.device.limits().max_storage_buffer_binding_size as usize / 4
    }

    /// im2col and the tuned matmul: 3.8× faster per CNN epoch than the direct ops on lavapipe, whose
    /// invocations re-read each input for every output channel (README, Performance). No hardware GPU
    /// has been measured yet; `scripts/gpu-check.sh` runs both.
    fn conv_algorithm(&self) -> crate::ops::ConvAlgorithm {
        crate::ops::ConvAlgorithm::PatchMatrix
    }

    fn kernel_variant(&self, kernel: KernelId) -> Option<String> {
        self.kernels.get(kernel.0)?.variant.clone()
    }

    fn profile(&mut self, kernels: &[KernelId]) -> Result<Option<Vec<(&'static str, f64)>>> {
        self.profile_kernels(kernels)
    }
}
