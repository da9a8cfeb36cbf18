//! Convolution straight from NCHW to NCHW (`shaders/conv2d.wgsl`): the other way to run a conv layer than
//! the batch-wide patch matrix of `conv.rs`, with no shared scratch and no transpose. On the CPU each
//! sample's patches are laid out as columns (`[patch, positions]`, in a buffer of the thread's own that
//! stays in cache) and one product per sample gives its output channels as rows, NCHW already. On a GPU
//! each invocation sums one output value. Which way a backend runs conv layers is
//! [`crate::backend::Backend::conv_algorithm`], chosen by measurement (see the README's bench figures).
//!
//! The weights are stored as the conv layer stores them: `[patch, out_channels]`, a patch index
//! `kk = (c, ky, kx)` in PyTorch's order.

use std::cell::RefCell;
use std::ops::Range;

use super::launch::{flat_groups, sum_windows, whole, Dims, Geometry, Launch, REDUCTION_WINDOW};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::activation::Activation;
use crate::host::gemm::gemm_serial;
use crate::host::pool::{for_sample_ranges, Disjoint};

pub const SHADER: Shader = Shader {
    stem: "conv2d",
    source: include_str!("../../shaders/conv2d.wgsl"),
};

/// `output[n, o, oy, ox] = activation(bias[o] + Σ_(c, ky, kx) input[n, c, oy·stride − padding + ky,
/// ox·stride − padding + kx] · weights[(c, ky, kx), o])`, zero outside the image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dForward {
    pub input: Region,
    pub weights: Region,
    pub bias: Region,
    pub output: Region,
    pub geometry: Geometry,
    pub out_channels: usize,
    pub activation: Activation,
}

/// `grad_input[n, c, y, x] = Σ grad_output[n, o, oy, ox] · weights[(c, ky, kx), o]` over the outputs whose
/// window reads `(y, x)`: the forward pass's adjoint in its input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dBackwardInput {
    pub grad_output: Region,
    pub weights: Region,
    pub grad_input: Region,
    pub geometry: Geometry,
    pub out_channels: usize,
}

/// `grad_weights[(c, ky, kx), o] = Σ_(n, oy, ox) grad_output[n, o, oy, ox] · input[n, c, oy·stride −
/// padding + ky, ox·stride − padding + kx]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dBackwardWeights {
    pub input: Region,
    pub grad_output: Region,
    pub grad_weights: Region,
    pub geometry: Geometry,
    pub out_channels: usize,
}

impl Conv2dForward {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "conv2d_forward";
}

impl Conv2dBackwardInput {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "conv2d_backward_input";
}

impl Conv2dBackwardWeights {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "conv2d_backward_weights";
}

/// Floats in the NCHW output of `out_channels` channels.
fn output_len(g: &Geometry, out_channels: usize) -> usize {
    g.batch * out_channels * g.out_positions()
}

/// The uniform: the image fields, `n` the output channels.
fn dims(g: &Geometry, out_channels: usize) -> Dims {
    Dims {
        n: out_channels as u32,
        ..g.dims()
    }
}

impl Kernel for Conv2dForward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let (g, outs) = (self.geometry, self.out_channels);
        vec![
            reads(self.input, g.input_len()),
            reads(self.weights, g.patch() * outs),
            reads(self.bias, outs),
            writes(self.output, output_len(&g, outs)),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (g, outs) = (self.geometry, self.out_channels);
        host.write([(self.output, output_len(&g, outs))], |host, [output]| {
            conv2d_forward(
                host.read(self.input, g.input_len()),
                host.read(self.weights, g.patch() * outs),
                host.read(self.bias, outs),
                output,
                &g,
                self.activation,
            )
        });
    }

    fn launch(&self) -> Launch {
        let (g, outs) = (self.geometry, self.out_channels);
        Launch {
            dims: Dims {
                code: self.activation.code(),
                slope: self.activation.slope(),
                ..dims(&g, outs)
            },
            bindings: vec![
                (1, self.input),
                (2, self.weights),
                (3, self.bias),
                (4, self.output),
            ],
            groups: flat_groups(output_len(&g, outs)),
        }
    }
}

impl Kernel for Conv2dBackwardInput {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let (g, outs) = (self.geometry, self.out_channels);
        vec![
            reads(self.grad_output, output_len(&g, outs)),
            reads(self.weights, g.patch() * outs),
            writes(self.grad_input, g.input_len()),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (g, outs) = (self.geometry, self.out_channels);
        host.write([(self.grad_input, g.input_len())], |host, [grad_input]| {
            conv2d_backward_input(
                host.read(self.grad_output, output_len(&g, outs)),
                host.read(self.weights, g.patch() * outs),
                grad_input,
                &g,
            )
        });
    }

    fn launch(&self) -> Launch {
        let (g, outs) = (self.geometry, self.out_channels);
        Launch {
            dims: dims(&g, outs),
            bindings: vec![
                (2, self.weights),
                (4, self.grad_input),
                (5, self.grad_output),
            ],
            groups: flat_groups(g.input_len()),
        }
    }
}

impl Kernel for Conv2dBackwardWeights {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let (g, outs) = (self.geometry, self.out_channels);
        vec![
            reads(self.input, g.input_len()),
            reads(self.grad_output, output_len(&g, outs)),
            writes(self.grad_weights, g.patch() * outs),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (g, outs) = (self.geometry, self.out_channels);
        host.write([(self.grad_weights, g.patch() * outs)], |host, [grad]| {
            conv2d_backward_weights(
                host.read(self.input, g.input_len()),
                host.read(self.grad_output, output_len(&g, outs)),
                grad,
                &g,
            )
        });
    }

    fn launch(&self) -> Launch {
        let (g, outs) = (self.geometry, self.out_channels);
        Launch {
            dims: dims(&g, outs),
            bindings: vec![
                (1, self.input),
                (4, self.grad_weights),
                (5, self.grad_output),
            ],
            groups: flat_groups(g.patch() * outs),
        }
    }

    /// Each weight's sum over samples × output positions runs in windows (llvmpipe's loop limit).
    fn launches(&self, _max_binding: usize) -> Vec<Launch> {
        let g = self.geometry;
        let mut base = whole(self.launch());
        let terms = g.batch * g.out_height() * g.out_width();
        base.dims.m = terms as u32;
        sum_windows(&base, terms, REDUCTION_WINDOW, |w, _, len| {
            w.dims.m = len as u32
        })
    }
}

/// How a backend runs conv layers; both give the same values within rounding, and the faster one on a
/// kind of device is its default (measured by the bench: `--conv` runs either).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// `im2col` over the whole batch into a shared scratch matrix, the tuned matmul, a batched transpose
    /// to NCHW (`ops::conv`): the products are as large as they get.
    #[default]
    PatchMatrix,
    /// The ops of this file, straight between NCHW tensors, with no scratch matrix and no transpose.
    Direct,
}

impl ConvAlgorithm {
    /// Its name on the command line and in bench lines.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgorithm::PatchMatrix => "im2col",
            ConvAlgorithm::Direct => "direct",
        }
    }
}

thread_local! {
    /// One sample's patch columns, kept per thread so that a step allocates nothing after its first.
    static PATCHES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The weight gradient's partial sums past the first (see [`conv2d_backward_weights`]).
    static PARTIALS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with this thread's patch buffer of `len` floats.
fn with_patches(len: usize, f: impl FnOnce(&mut [f32])) {
    PATCHES.with(|cell| {
        let mut buffer = cell.borrow_mut();
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        f(&mut buffer[..len]);
    });
}

/// The output columns `ox` whose window column `kx` lands inside the image, and the image column of the
/// first of them.
fn inside_columns(g: &Geometry, kx: usize) -> (Range<usize>, usize) {
    let out_w = g.out_width();
    // ix = ox·stride + kx − padding must lie in 0..width.
    let first = g.padding.saturating_sub(kx).div_ceil(g.stride).min(out_w);
    let last = match (g.width + g.padding).checked_sub(kx + 1) {
        Some(max) => (max / g.stride + 1).min(out_w),
        None => 0,
    }
    .max(first);
    (
        first..last,
        (first * g.stride + kx).saturating_sub(g.padding),
    )
}

/// The image row read by output row `oy` at kernel row `ky`, if inside.
fn image_row(g: &Geometry, oy: usize, ky: usize) -> Option<usize> {
    (oy * g.stride + ky)
        .checked_sub(g.padding)
        .filter(|&y| y < g.height)
}

/// The output rows whose kernel row `ky` lands inside the image.
fn inside_rows(g: &Geometry, ky: usize) -> Range<usize> {
    let out_h = g.out_height();
    let first = g.padding.saturating_sub(ky).div_ceil(g.stride).min(out_h);
    let last = match (g.height + g.padding).checked_sub(ky + 1) {
        Some(max) => (max / g.stride + 1).min(out_h),
        None => 0,
    }
    .max(first);
    first..last
}

/// Whether a patch row is the image plane shifted by a fixed offset: stride 1 and the output as wide as
/// the image (a "same" convolution, the common case). Its inside rows are then one run of the plane.
fn shifted_plane(g: &Geometry) -> bool {
    g.stride == 1 && g.out_width() == g.width
}

/// Where a shifted patch row (see [`shifted_plane`]) reads: its positions `block` that read inside rows,
/// and the plane index (possibly negative) that the first of them reads.
fn shifted_block(g: &Geometry, ky: usize, kx: usize) -> (Range<usize>, isize) {
    let rows = inside_rows(g, ky);
    let start = ((rows.start + ky) as isize - g.padding as isize) * g.width as isize + kx as isize
        - g.padding as isize;
    (rows.start * g.width..rows.end * g.width, start)
}

/// The positions `ox` of each output row that read outside the image's columns (left or right padding).
fn outside_columns(g: &Geometry, kx: usize) -> impl Iterator<Item = usize> {
    let (inside, _) = inside_columns(g, kx);
    (0..inside.start).chain(inside.end..g.out_width())
}

/// One sample's patches as columns: `cols[(c, ky, kx), (oy, ox)]`, zero where the window hangs over the
/// padding. Each row is the image plane shifted: one copy of the plane where [`shifted_plane`], else a
/// run of output columns at a time.
fn patch_columns(image: &[f32], cols: &mut [f32], g: &Geometry) {
    let (out_w, plane) = (g.out_width(), g.height * g.width);
    let mut rows = cols.chunks_exact_mut(g.out_positions());
    for channel in image.chunks_exact(plane) {
        for ky in 0..g.kernel_h {
            for kx in 0..g.kernel_w {
                let row = rows.next().expect("one row per patch index");
                if shifted_plane(g) {
                    let (block, start) = shifted_block(g, ky, kx);
                    // Plane indices start + i for i in block; only the ends can fall outside the plane.
                    let skip = (-start).max(0) as usize;
                    let end = block.len().min((plane as isize - start).max(0) as usize);
                    row.fill(0.0);
                    if skip < end {
                        let from = (start + skip as isize) as usize;
                        row[block.start + skip..block.start + end]
                            .copy_from_slice(&channel[from..from + end - skip]);
                    }
                    // The columns that wrapped around to the neighbouring image row.
                    for out in row[block].chunks_exact_mut(out_w) {
                        for ox in outside_columns(g, kx) {
                            out[ox] = 0.0;
                        }
                    }
                    continue;
                }
                let (inside, first_x) = inside_columns(g, kx);
                for (oy, out) in row.chunks_exact_mut(out_w).enumerate() {
                    let Some(y) = image_row(g, oy, ky) else {
                        out.fill(0.0);
                        continue;
                    };
                    out[..inside.start].fill(0.0);
                    out[inside.end..].fill(0.0);
                    if inside.is_empty() {
                        continue;
                    }
                    let source = &channel[y * g.width + first_x..];
                    let run = &mut out[inside.clone()];
                    if g.stride == 1 {
                        run.copy_from_slice(&source[..run.len()]);
                    } else {
                        for (value, &x) in run.iter_mut().zip(source.iter().step_by(g.stride)) {
                            *value = x;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`patch_columns`]: each patch column's value added onto the pixel it was read from.
/// `cols` is used up: where [`shifted_plane`], its values over the padding are zeroed first, so that
/// each row adds onto the plane as one run.
fn add_patch_columns(cols: &mut [f32], image: &mut [f32], g: &Geometry) {
    let (out_w, plane) = (g.out_width(), g.height * g.width);
    let mut rows = cols.chunks_exact_mut(g.out_positions());
    for channel in image.chunks_exact_mut(plane) {
        for ky in 0..g.kernel_h {
            for kx in 0..g.kernel_w {
                let row = rows.next().expect("one row per patch index");
                if shifted_plane(g) {
                    let (block, start) = shifted_block(g, ky, kx);
                    for out in row[block.clone()].chunks_exact_mut(out_w) {
                        for ox in outside_columns(g, kx) {
                            out[ox] = 0.0;
                        }
                    }
                    let skip = (-start).max(0) as usize;
                    let end = block.len().min((plane as isize - start).max(0) as usize);
                    if skip < end {
                        let from = (start + skip as isize) as usize;
                        let values = &row[block.start + skip..block.start + end];
                        for (pixel, &value) in
                            channel[from..from + end - skip].iter_mut().zip(values)
                        {
                            *pixel += value;
                        }
                    }
                    continue;
                }
                let (inside, first_x) = inside_columns(g, kx);
                for (oy, values) in row.chunks_exact(out_w).enumerate() {
                    let Some(y) = image_row(g, oy, ky).filter(|_| !inside.is_empty()) else {
                        continue;
                    };
                    let target = &mut channel[y * g.width + first_x..];
                    let values = &values[inside.clone()];
                    if g.stride == 1 {
                        for (pixel, &value) in target.iter_mut().zip(values) {
                            *pixel += value;
                        }
                    } else {
                        for (pixel, &value) in target.iter_mut().step_by(g.stride).zip(values) {
                            *pixel += value;
                        }
                    }
                }
            }
        }
    }
}

/// See [`Conv2dForward`]; split over threads by sample.
pub fn conv2d_forward(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    g: &Geometry,
    activation: Activation,
) {
    let (patch, positions, outs) = (g.patch(), g.out_positions(), bias.len());
    let (image, per_sample) = (g.channels * g.height * g.width, outs * positions);
    let output = Disjoint::new(output);
    for_sample_ranges(g.batch, patch * per_sample, &|samples| {
        with_patches(patch * positions, |cols| {
            for n in samples {
                patch_columns(&input[n * image..][..image], cols, g);
                // SAFETY: each part writes its own samples.
                let out = unsafe { output.range(n * per_sample..(n + 1) * per_sample) };
                // The weights [patch, outs] read as their transpose [outs, patch].
                gemm_serial(
                    (outs, patch, positions),
                    weights,
                    (1, outs),
                    cols,
                    (positions, 1),
                    out,
                    false,
                );
                for (row, &b) in out.chunks_exact_mut(positions).zip(bias) {
                    activation.apply_biased(row, b);
                }
            }
        })
    });
}

/// See [`Conv2dBackwardInput`]; split over threads by sample.
pub fn conv2d_backward_input(
    grad_output: &[f32],
    weights: &[f32],
    grad_input: &mut [f32],
    g: &Geometry,
) {
    let (patch, positions, image) = (
        g.patch(),
        g.out_positions(),
        g.channels * g.height * g.width,
    );
    let outs = weights.len() / patch.max(1);
    let per_sample = outs * positions;
    let grad_input = Disjoint::new(grad_input);
    for_sample_ranges(g.batch, patch * per_sample, &|samples| {
        with_patches(patch * positions, |cols| {
            for n in samples {
                gemm_serial(
                    (patch, outs, positions),
                    weights,
                    (outs, 1),
                    &grad_output[n * per_sample..][..per_sample],
                    (positions, 1),
                    cols,
                    false,
                );
                // SAFETY: each part writes its own samples.
                let target = unsafe { grad_input.range(n * image..(n + 1) * image) };
                target.fill(0.0);
                add_patch_columns(cols, target, g);
            }
        })
    });
}

/// Samples whose weight gradients are summed into one partial: the partials are then added in order, so
/// the result does not depend on how many threads ran them.
const SAMPLES_PER_PARTIAL: usize = 16;

/// See [`Conv2dBackwardWeights`]: partial sums over `SAMPLES_PER_PARTIAL` samples each, split over
/// threads, then added in order.
pub fn conv2d_backward_weights(
    input: &[f32],
    grad_output: &[f32],
    grad_weights: &mut [f32],
    g: &Geometry,
) {
    let (len, chunks) = (grad_weights.len(), g.batch.div_ceil(SAMPLES_PER_PARTIAL));
    if chunks == 0 {
        return grad_weights.fill(0.0);
    }
    // The first partial is the output itself; the others live in this thread's buffer, kept between
    // steps so that a step allocates nothing after its first.
    PARTIALS.with(|cell| {
        let mut rest = cell.borrow_mut();
        if rest.len() < (chunks - 1) * len {
            rest.resize((chunks - 1) * len, 0.0);
        }
        let rest = &mut rest[..(chunks - 1) * len];
        sum_partials(input, grad_output, grad_weights, rest, g);
    });
}

/// [`conv2d_backward_weights`]'s partial sums: chunk 0 into `grad_weights`, chunk `i` into `rest`'s
/// `i − 1`-th block, then `rest` added onto `grad_weights` in order.
fn sum_partials(
    input: &[f32],
    grad_output: &[f32],
    grad_weights: &mut [f32],
    rest: &mut [f32],
    g: &Geometry,
) {
    let (patch, positions, image) = (
        g.patch(),
        g.out_positions(),
        g.channels * g.height * g.width,
    );
    let len = grad_weights.len();
    let outs = len / patch.max(1);
    let per_sample = outs * positions;
    let chunks = g.batch.div_ceil(SAMPLES_PER_PARTIAL);
    {
        let (first, rest) = (Disjoint::new(grad_weights), Disjoint::new(rest));
        let work = SAMPLES_PER_PARTIAL * patch * per_sample;
        for_sample_ranges(chunks, work, &|range| {
            with_patches(patch * positions, |cols| {
                for chunk in range {
                    // SAFETY: each part writes the partials of its own chunks.
                    let partial = unsafe {
                        match chunk {
                            0 => first.range(0..len),
                            _ => rest.range((chunk - 1) * len..chunk * len),
                        }
                    };
                    let samples =
                        chunk * SAMPLES_PER_PARTIAL..g.batch.min((chunk + 1) * SAMPLES_PER_PARTIAL);
                    for (i, n) in samples.enumerate() {
                        patch_columns(&input[n * image..][..image], cols, g);
                        // [patch, positions] · grad_output[n]ᵀ ([positions, outs]).
                        gemm_serial(
                            (patch, positions, outs),
                            cols,
                            (positions, 1),
                            &grad_output[n * per_sample..][..per_sample],
                            (1, positions),
                            partial,
                            i > 0,
                        );
                    }
                }
            })
        });
    }
    for partial in rest.chunks_exact(len) {
        for (total, &value) in grad_weights.iter_mut().zip(partial) {
            *total += value;
        }
    }
}
