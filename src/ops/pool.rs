//! Pooling over NCHW images without padding (`shaders/pool.wgsl`): windows of `kernel_h × kernel_w` every
//! `stride`. Max pooling sends a window's gradient to its first maximum in row-major order, as PyTorch does;
//! average pooling divides by the window's size. The backward passes gather over the windows that hold each
//! input value, so sums run in a fixed order.

use super::launch::{flat_groups, Geometry, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::host::pool::for_samples;

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

/// The index of window `(oy, ox)`'s first maximum in `plane` (one channel of one sample).
fn first_max(plane: &[f32], oy: usize, ox: usize, g: &Geometry) -> usize {
    let corner = oy * g.stride * g.width + ox * g.stride;
    let (mut best, mut max) = (corner, plane[corner]);
    for ky in 0..g.kernel_h {
        let row = corner + ky * g.width;
        for (at, &value) in (row..).zip(&plane[row..row + g.kernel_w]) {
            if value > max {
                (best, max) = (at, value);
            }
        }
    }
    best
}

/// The common 2×2 window with stride 2: windows that do not overlap, taken a pair of image rows at a time.
fn is_2x2(g: &Geometry) -> bool {
    g.kernel_h == 2 && g.kernel_w == 2 && g.stride == 2
}

/// Which of the window's four values `[a, b, c, d]` (row-major) is its first maximum, and that value:
/// [`first_max`]'s comparisons in its order, written as selects so that the compiler needs no branches (the
/// winner of random data is as good as random, and mispredicted branches cost more than the compares).
#[inline]
fn first_of_four([a, b, c, d]: [f32; 4]) -> (u8, f32) {
    let (mut at, mut max) = (0, a);
    if b > max {
        (at, max) = (1, b);
    }
    if c > max {
        (at, max) = (2, c);
    }
    if d > max {
        (at, max) = (3, d);
    }
    (at, max)
}

/// The four values of window `ox` over the image rows `top` and `bottom`.
#[inline]
fn four(top: &[f32], bottom: &[f32], ox: usize) -> [f32; 4] {
    [
        top[2 * ox],
        top[2 * ox + 1],
        bottom[2 * ox],
        bottom[2 * ox + 1],
    ]
}

/// [`max_pool`] of one plane for 2×2 windows with stride 2.
fn max_pool_2x2(image: &[f32], out: &mut [f32], width: usize) {
    let out_w = width / 2;
    for (values, rows) in out
        .chunks_exact_mut(out_w)
        .zip(image.chunks_exact(2 * width))
    {
        let (top, bottom) = rows.split_at(width);
        for (ox, value) in values.iter_mut().enumerate() {
            *value = first_of_four(four(top, bottom, ox)).1;
        }
    }
}

/// [`max_pool_backward`] of one plane for 2×2 windows with stride 2. Each input value is in at most one
/// window, so every value is written once: its window's gradient where it is the first maximum, else 0
/// (and 0 in a last row or column that no window covers).
fn max_pool_backward_2x2(image: &[f32], grads: &[f32], grad: &mut [f32], width: usize) {
    let out_w = width / 2;
    let covered = grads.len() / out_w.max(1) * 2 * width;
    let (windows, rest) = grad.split_at_mut(covered);
    rest.fill(0.0);
    let rows = windows
        .chunks_exact_mut(2 * width)
        .zip(image.chunks_exact(2 * width));
    for ((grad_rows, rows), gradients) in rows.zip(grads.chunks_exact(out_w)) {
        let (top, bottom) = rows.split_at(width);
        let (grad_top, grad_bottom) = grad_rows.split_at_mut(width);
        for (ox, &gradient) in gradients.iter().enumerate() {
            let at = first_of_four(four(top, bottom, ox)).0;
            let cell = |i: u8| if at == i { gradient } else { 0.0 };
            grad_top[2 * ox] = cell(0);
            grad_top[2 * ox + 1] = cell(1);
            grad_bottom[2 * ox] = cell(2);
            grad_bottom[2 * ox + 1] = cell(3);
        }
        // An odd width leaves a last column no window covers.
        grad_top[2 * out_w..].fill(0.0);
        grad_bottom[2 * out_w..].fill(0.0);
    }
}

/// `f(output plane, input plane)` for every channel of every sample, split over threads by sample.
fn per_plane(
    output: &mut [f32],
    out_plane: usize,
    input_plane: usize,
    g: &Geometry,
    f: &(dyn Fn(&mut [f32], usize) + Sync),
) {
    for_samples(output, g.channels * out_plane, &|first, part| {
        for (i, plane) in part.chunks_exact_mut(out_plane).enumerate() {
            f(plane, (first * g.channels + i) * input_plane);
        }
    });
}

/// Each window's maximum.
pub fn max_pool(input: &[f32], output: &mut [f32], g: &Geometry) {
    let (plane, out_w) = (g.height * g.width, g.out_width());
    per_plane(output, g.out_positions(), plane, g, &|out, base| {
        let image = &input[base..base + plane];
        if is_2x2(g) {
            return max_pool_2x2(image, out, g.width);
        }
        for (row, values) in out.chunks_exact_mut(out_w).enumerate() {
            for (ox, value) in values.iter_mut().enumerate() {
                *value = image[first_max(image, row, ox, g)];
            }
        }
    });
}

/// Each window's mean, summed in row-major order.
pub fn avg_pool(input: &[f32], output: &mut [f32], g: &Geometry) {
    let (plane, out_w) = (g.height * g.width, g.out_width());
    let size = (g.kernel_h * g.kernel_w) as f32;
    per_plane(output, g.out_positions(), plane, g, &|out, base| {
        let image = &input[base..base + plane];
        for (pos, value) in out.iter_mut().enumerate() {
            let (oy, ox) = (pos / out_w, pos % out_w);
            let mut sum = 0.0;
            for ky in 0..g.kernel_h {
                let row = (oy * g.stride + ky) * g.width + ox * g.stride;
                for v in &image[row..row + g.kernel_w] {
                    sum += v;
                }
            }
            *value = sum / size;
        }
    });
}

/// Each window's gradient to its first maximum. Windows are visited in row-major order, so an input value
/// adds up its windows' gradients in the order the shader's gather does.
pub fn max_pool_backward(input: &[f32], grad_output: &[f32], grad_input: &mut [f32], g: &Geometry) {
    let (plane, positions, out_w) = (g.height * g.width, g.out_positions(), g.out_width());
    per_plane(grad_input, plane, plane, g, &|grad, base| {
        let image = &input[base..base + plane];
        let grads = &grad_output[base / plane * positions..][..positions];
        if is_2x2(g) {
            return max_pool_backward_2x2(image, grads, grad, g.width);
        }
        grad.fill(0.0);
        for (oy, row) in grads.chunks_exact(out_w).enumerate() {
            for (ox, &gradient) in row.iter().enumerate() {
                grad[first_max(image, oy, ox, g)] += gradient;
            }
        }
    });
}

/// Each window's gradient spread evenly over it: the windows' gradients summed in row-major order, then
/// divided by the window's size, as the shader does.
pub fn avg_pool_backward(grad_output: &[f32], grad_input: &mut [f32], g: &Geometry) {
    let (plane, positions, out_w) = (g.height * g.width, g.out_positions(), g.out_width());
    let size = (g.kernel_h * g.kernel_w) as f32;
    per_plane(grad_input, plane, plane, g, &|grad, base| {
        let grads = &grad_output[base / plane * positions..][..positions];
        grad.fill(0.0);
        for (pos, &gradient) in grads.iter().enumerate() {
            let (oy, ox) = (pos / out_w, pos % out_w);
            for ky in 0..g.kernel_h {
                let row = (oy * g.stride + ky) * g.width + ox * g.stride;
                for v in &mut grad[row..row + g.kernel_w] {
                    *v += gradient;
                }
            }
        }
        for v in grad.iter_mut() {
            *v /= size;
        }
    });
}
