//! Pooling over NCHW images without padding (`shaders/pool.wgsl`): windows of `kernel_h × kernel_w` every
//! `stride`. Max pooling sends a window's gradient to its first maximum in row-major order, as PyTorch does;
//! average pooling divides by the window's size. The backward passes gather over the windows that hold each
//! input value, so sums run in a fixed order.

use super::launch::{flat_groups, Geometry, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};

pub const SHADER: Shader = Shader {
    stem: "pool",
    source: include_str!("../../shaders/pool.wgsl"),
};

/// `output[n, c, oy, ox]` = the maximum of window `(oy, ox)` of `input[n, c]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxPool {
    pub input: Region,
    pub output: Region,
    pub geometry: Geometry,
}

/// `output[n, c, oy, ox]` = the mean of window `(oy, ox)` of `input[n, c]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPool {
    pub input: Region,
    pub output: Region,
    pub geometry: Geometry,
}

/// `grad_input` of a [`MaxPool`]: each window's gradient to its first maximum, found again in `input`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxPoolBackward {
    pub input: Region,
    pub grad_output: Region,
    pub grad_input: Region,
    pub geometry: Geometry,
}

/// `grad_input` of an [`AvgPool`]: each window's gradient spread evenly over it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPoolBackward {
    pub grad_output: Region,
    pub grad_input: Region,
    pub geometry: Geometry,
}

impl MaxPool {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "max_pool";
}

impl AvgPool {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "avg_pool";
}

impl MaxPoolBackward {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "max_pool_backward";
}

impl AvgPoolBackward {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "avg_pool_backward";
}

/// One invocation per output value, looping over a window.
fn forward_launch(input: Region, output: Region, g: &Geometry) -> Launch {
    Launch {
        dims: g.dims(),
        bindings: vec![(1, input), (2, output)],
        groups: flat_groups(g.output_len()),
    }
}

/// One invocation per input value, looping over the windows that hold it (`per_window` loops in each).
fn backward_loops(g: &Geometry, per_window: usize) -> Option<(&'static str, usize, usize)> {
    let windows = g.kernel_h.div_ceil(g.stride) * g.kernel_w.div_ceil(g.stride);
    Some(("pooling backward", windows * per_window, 1))
}

impl Kernel for MaxPool {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let g = self.geometry;
        vec![
            reads(self.input, g.input_len()),
            writes(self.output, g.output_len()),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let g = self.geometry;
        host.write([(self.output, g.output_len())], |host, [output]| {
            max_pool(host.read(self.input, g.input_len()), output, &g)
        });
    }

    fn launch(&self) -> Launch {
        forward_launch(self.input, self.output, &self.geometry)
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        let g = self.geometry;
        Some(("pooling window", g.kernel_h * g.kernel_w, 1))
    }
}

impl Kernel for AvgPool {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let g = self.geometry;
        vec![
            reads(self.input, g.input_len()),
            writes(self.output, g.output_len()),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let g = self.geometry;
        host.write([(self.output, g.output_len())], |host, [output]| {
            avg_pool(host.read(self.input, g.input_len()), output, &g)
        });
    }

    fn launch(&self) -> Launch {
        forward_launch(self.input, self.output, &self.geometry)
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        let g = self.geometry;
        Some(("pooling window", g.kernel_h * g.kernel_w, 1))
    }
}

impl Kernel for MaxPoolBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let g = self.geometry;
        vec![
            reads(self.input, g.input_len()),
            reads(self.grad_output, g.output_len()),
            writes(self.grad_input, g.input_len()),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let g = self.geometry;
        host.write([(self.grad_input, g.input_len())], |host, [grad_input]| {
            max_pool_backward(
                host.read(self.input, g.input_len()),
                host.read(self.grad_output, g.output_len()),
                grad_input,
                &g,
            )
        });
    }

    fn launch(&self) -> Launch {
        let g = self.geometry;
        Launch {
            dims: g.dims(),
            bindings: vec![(1, self.input), (3, self.grad_output), (2, self.grad_input)],
            groups: flat_groups(g.input_len()),
        }
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        let g = self.geometry;
        backward_loops(&g, g.kernel_h * g.kernel_w)
    }
}

impl Kernel for AvgPoolBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let g = self.geometry;
        vec![
            reads(self.grad_output, g.output_len()),
            writes(self.grad_input, g.input_len()),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let g = self.geometry;
        host.write([(self.grad_input, g.input_len())], |host, [grad_input]| {
            avg_pool_backward(host.read(self.grad_output, g.output_len()), grad_input, &g)
        });
    }

    fn launch(&self) -> Launch {
        let g = self.geometry;
        Launch {
            dims: g.dims(),
            bindings: vec![(3, self.grad_output), (2, self.grad_input)],
            groups: flat_groups(g.input_len()),
        }
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        backward_loops(&self.geometry, 1)
    }
}

/// The flat index of window `(oy, ox)`'s first maximum in the plane starting at `base`.
fn first_max(input: &[f32], base: usize, oy: usize, ox: usize, g: &Geometry) -> usize {
    let mut best = base + oy * g.stride * g.width + ox * g.stride;
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            let at = base + (oy * g.stride + ky) * g.width + ox * g.stride + kx;
            if input[at] > input[best] {
                best = at;
            }
        }
    }
    best
}

/// Each window's maximum.
pub fn max_pool(input: &[f32], output: &mut [f32], g: &Geometry) {
    let (positions, plane) = (g.out_positions(), g.height * g.width);
    for (i, value) in output.iter_mut().enumerate() {
        let (pos, base) = (i % positions, (i / positions) * plane);
        *value = input[first_max(input, base, pos / g.out_width(), pos % g.out_width(), g)];
    }
}

/// Each window's mean, summed in row-major order.
pub fn avg_pool(input: &[f32], output: &mut [f32], g: &Geometry) {
    let (positions, plane) = (g.out_positions(), g.height * g.width);
    let size = (g.kernel_h * g.kernel_w) as f32;
    for (i, value) in output.iter_mut().enumerate() {
        let (pos, base) = (i % positions, (i / positions) * plane);
        let (oy, ox) = (pos / g.out_width(), pos % g.out_width());
        let mut sum = 0.0;
        for ky in 0..g.kernel_h {
            for kx in 0..g.kernel_w {
                sum += input[base + (oy * g.stride + ky) * g.width + ox * g.stride + kx];
            }
        }
        *value = sum / size;
    }
}

/// The windows holding index `v` along a dimension with `size` window positions.
fn windows(v: usize, kernel: usize, size: usize, stride: usize) -> std::ops::RangeInclusive<usize> {
    let first = (v + 1).saturating_sub(kernel).div_ceil(stride);
    first..=(v / stride).min(size - 1)
}

/// Each window's gradient to its first maximum.
pub fn max_pool_backward(input: &[f32], grad_output: &[f32], grad_input: &mut [f32], g: &Geometry) {
    let plane = g.height * g.width;
    for (i, value) in grad_input.iter_mut().enumerate() {
        let (base, out_base) = ((i / plane) * plane, (i / plane) * g.out_positions());
        let (y, x) = ((i % plane) / g.width, (i % plane) % g.width);
        let mut sum = 0.0;
        for oy in windows(y, g.kernel_h, g.out_height(), g.stride) {
            for ox in windows(x, g.kernel_w, g.out_width(), g.stride) {
                if first_max(input, base, oy, ox, g) == i {
                    sum += grad_output[out_base + oy * g.out_width() + ox];
                }
            }
        }
        *value = sum;
    }
}

/// Each window's gradient spread evenly over it.
pub fn avg_pool_backward(grad_output: &[f32], grad_input: &mut [f32], g: &Geometry) {
    let plane = g.height * g.width;
    let size = (g.kernel_h * g.kernel_w) as f32;
    for (i, value) in grad_input.iter_mut().enumerate() {
        let out_base = (i / plane) * g.out_positions();
        let (y, x) = ((i % plane) / g.width, (i % plane) % g.width);
        let mut sum = 0.0;
        for oy in windows(y, g.kernel_h, g.out_height(), g.stride) {
            for ox in windows(x, g.kernel_w, g.out_width(), g.stride) {
                sum += grad_output[out_base + oy * g.out_width() + ox];
            }
        }
        *value = sum / size;
    }
}
