//! Per-kernel GPU timing with timestamp queries, for the benchmark.

use super::WgpuBackend;
use crate::backend::KernelId;
use crate::error::{Error, Result};

impl WgpuBackend {
    /// [`Backend::profile`]: each kernel in its own compute pass between two timestamp writes.
    pub(super) fn profile_kernels(
        &mut self,
        kernels: &[KernelId],
    ) -> Result<Option<Vec<(&'static str, f64)>>> {
        if !self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            || kernels.is_empty()
        {
            return Ok(None);
        }
        if let Some(bad) = kernels.iter().find(|k| k.0 >= self.kernels.len()) {
            return Err(Error::value("kernel", format!("{bad:?} was not prepared")));
        }
        self.flush()?;
        let count = 2 * kernels.len() as u32;
        let bytes = u64::from(count) * wgpu::QUERY_SIZE as u64;
        let (query_set, resolved, readable) = self.scoped("profiling buffers", |device| {
            let query_set = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let buffer = |usage, label| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage,
                    mapped_at_creation: false,
                })
            };
            let resolved = buffer(
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                "timestamps",
            );
            let readable = buffer(
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                "timestamps readback",
            );
            (query_set, resolved, readable)
        })?;
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgtrain profile"),
            });
        for (i, id) in kernels.iter().enumerate() {
            let kernel = &self.kernels[id.0];
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.name),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &query_set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_pipeline(&kernel.pipeline);
            for dispatch in &kernel.dispatches {
                pass.set_bind_group(0, &dispatch.bind_group, &[]);
                let [x, y, z] = dispatch.groups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        encoder.resolve_query_set(&query_set, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &readable, 0, bytes);
        self.queue.submit([encoder.finish()]);
        self.counters.submits += 1;
        let (sender, receiver) = std::sync::mpsc::channel();
        readable.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = sender.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for timestamps: {e}")))?;
        receiver
            .recv()
            .map_err(|_| Error::Gpu("timestamp readback was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("mapping timestamps: {e}")))?;
        let ticks: Vec<u64> = {
            let view = readable
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading timestamps: {e}")))?;
            bytemuck::cast_slice::<u8, u64>(&view).to_vec()
        };
        readable.unmap();
        let microseconds_per_tick = f64::from(self.queue.get_timestamp_period()) / 1e3;
        Ok(Some(
            kernels
                .iter()
                .zip(ticks.chunks_exact(2))
                .map(|(id, t)| {
                    (
                        self.kernels[id.0].name,
                        t[1].saturating_sub(t[0]) as f64 * microseconds_per_tick,
                    )
                })
                .collect(),
        ))
    }
}
