//! Sums over a batch (`shaders/reduce.wgsl`): a dense layer's bias gradient (over rows) and a conv
//! layer's (over the samples and positions of each channel).

use super::launch::{flat_groups, sum_windows, whole, Dims, Launch, REDUCTION_WINDOW};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::host::pool::{for_sample_ranges, Disjoint};

pub const SHADER: Shader = Shader {
    stem: "reduce",
    source: include_str!("../../shaders/reduce.wgsl"),
};

/// `grad_bias[j] = Σ_i grad_output[i, j]`, summed over rows in order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BiasGrad {
    pub grad_output: Region,
    pub grad_bias: Region,
    pub rows: usize,
    pub cols: usize,
}

impl BiasGrad {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "bias_grad";
}

impl Kernel for BiasGrad {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.grad_output, self.rows * self.cols),
            writes(self.grad_bias, self.cols),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (rows, cols) = (self.rows, self.cols);
        host.write([(self.grad_bias, cols)], |host, [grad_bias]| {
            bias_grad(host.read(self.grad_output, rows * cols), grad_bias, cols)
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                n: self.cols as u32,
                ..Dims::default()
            },
            bindings: vec![(1, self.grad_output), (2, self.grad_bias)],
            groups: flat_groups(self.cols),
        }
    }

    fn launches(&self, _max_binding: usize) -> Vec<Launch> {
        let mut base = whole(self.launch());
        base.dims.stride = self.rows as u32;
        sum_windows(&base, self.rows, REDUCTION_WINDOW, |w, _, len| {
            w.dims.m = len as u32
        })
    }
}

/// Column sums of `grad_output[rows, cols]`, over rows in order.
pub fn bias_grad(grad_output: &[f32], grad_bias: &mut [f32], cols: usize) {
    grad_bias.fill(0.0);
    for row in grad_output.chunks_exact(cols) {
        for (b, &g) in grad_bias.iter_mut().zip(row) {
            *b += g;
        }
    }
}

/// `grad_bias[c] = Σ_(n, p) grad_output[n, c, p]` over an NCHW gradient of `positions` values a channel:
/// a conv layer's bias gradient when it runs straight on NCHW (`ops::conv2d`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelSum {
    pub grad_output: Region,
    pub grad_bias: Region,
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ChannelSum {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "channel_sum";

    fn len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Terms of each channel's sum: samples × positions.
    fn terms(&self) -> usize {
        self.batch * self.height * self.width
    }
}

impl Kernel for ChannelSum {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.grad_output, self.len()),
            writes(self.grad_bias, self.channels),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.grad_bias, self.channels)], |host, [grad_bias]| {
            channel_sum(
                host.read(self.grad_output, self.len()),
                grad_bias,
                self.height * self.width,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                batch: self.batch as u32,
                channels: self.channels as u32,
                height: self.height as u32,
                width: self.width as u32,
                m: self.terms() as u32,
                ..Dims::default()
            },
            bindings: vec![(1, self.grad_output), (2, self.grad_bias)],
            groups: flat_groups(self.channels),
        }
    }

    fn launches(&self, _max_binding: usize) -> Vec<Launch> {
        sum_windows(
            &whole(self.launch()),
            self.terms(),
            REDUCTION_WINDOW,
            |w, _, len| w.dims.m = len as u32,
        )
    }
}

/// Lanes of the CPU channel sum.
const LANES: usize = 16;

/// Channel sums of an NCHW gradient: each plane summed in `LANES` interleaved running sums, then the
/// planes of a channel added sample by sample; channels split over threads.
pub fn channel_sum(grad_output: &[f32], grad_bias: &mut [f32], positions: usize) {
    let (channels, positions) = (grad_bias.len(), positions.max(1));
    let samples = grad_output.len() / (channels * positions).max(1);
    let grad_bias = Disjoint::new(grad_bias);
    for_sample_ranges(channels, samples * positions, &|range| {
        // SAFETY: each part writes its own channels.
        let sums = unsafe { grad_bias.range(range.clone()) };
        for (c, sum) in range.zip(sums) {
            *sum = 0.0;
            for n in 0..samples {
                *sum += plane_sum(&grad_output[(n * channels + c) * positions..][..positions]);
            }
        }
    });
}

/// One plane's sum in [`LANES`] interleaved running sums, so the loop is not bound by one add's latency.
fn plane_sum(plane: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut blocks = plane.chunks_exact(LANES);
    for block in &mut blocks {
        for (lane, &value) in lanes.iter_mut().zip(block) {
            *lane += value;
        }
    }
    let tail: f32 = blocks.remainder().iter().sum();
    lanes.iter().sum::<f32>() + tail
}
