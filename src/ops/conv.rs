//! Convolution as a matrix product (`shaders/conv.wgsl`): `im2col` lays every patch of an NCHW batch out as a
//! row, so a conv layer is one product with the weights; `col2im` sums the product's input gradient back
//! onto the image. A patch row `p = (n, oy, ox)` holds `kk = (c, ky, kx)` in PyTorch's weight order.

use super::launch::{flat_groups, Geometry, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::host::pool::for_samples;

pub const SHADER: Shader = Shader {
    stem: "conv",
    source: include_str!("../../shaders/conv.wgsl"),
};

/// `cols[p, kk] = input[n, c, oy·stride − padding + ky, ox·stride − padding + kx]`, 0 outside the image;
/// `cols` is `[batch · out_height · out_width, channels · kernel_h · kernel_w]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Im2col {
    pub input: Region,
    pub cols: Region,
    pub geometry: Geometry,
}

impl Im2col {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "im2col";
}

impl Kernel for Im2col {
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
            writes(self.cols, g.batch * g.out_positions() * g.patch()),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let g = self.geometry;
        let len = g.batch * g.out_positions() * g.patch();
        host.write([(self.cols, len)], |host, [cols]| {
            im2col(host.read(self.input, g.input_len()), cols, &g)
        });
    }

    fn launch(&self) -> Launch {
        let g = self.geometry;
        Launch {
            dims: g.dims(),
            bindings: vec![(1, self.input), (2, self.cols)],
            groups: flat_groups(g.batch * g.out_positions() * g.patch()),
        }
    }
}

/// `grad_input[n, c, y, x] = Σ grad_cols[p, kk]` over the patches that read `(y, x)`: the adjoint of
/// [`Im2col`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Col2im {
    pub grad_cols: Region,
    pub grad_input: Region,
    pub geometry: Geometry,
}

impl Col2im {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "col2im";
}

impl Kernel for Col2im {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let g = self.geometry;
        vec![
            reads(self.grad_cols, g.batch * g.out_positions() * g.patch()),
            writes(self.grad_input, g.input_len()),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let g = self.geometry;
        let len = g.batch * g.out_positions() * g.patch();
        host.write([(self.grad_input, g.input_len())], |host, [grad_input]| {
            col2im(host.read(self.grad_cols, len), grad_input, &g)
        });
    }

    fn launch(&self) -> Launch {
        let g = self.geometry;
        Launch {
            dims: g.dims(),
            bindings: vec![(1, self.grad_cols), (2, self.grad_input)],
            groups: flat_groups(g.input_len()),
        }
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        let g = self.geometry;
        Some(("col2im", g.kernel_h * g.kernel_w, 1))
    }
}

/// Where a patch at output position `(oy, ox)` reads: its kernel rows `ky` that land inside the image (the
/// others read the zero padding), and its kernel columns `first..last` that do.
struct Window {
    rows: std::ops::Range<usize>,
    first: usize,
    last: usize,
    /// The image column of kernel column 0 (meaningful for `first..last`).
    left: usize,
    /// The image row of kernel row 0, plus the padding (so `top + ky − padding` is the row).
    top: usize,
}

impl Window {
    fn at(g: &Geometry, oy: usize, ox: usize) -> Window {
        let (top, left) = (oy * g.stride, ox * g.stride);
        let first_row = g.padding.saturating_sub(top).min(g.kernel_h);
        let last_row = (g.height + g.padding)
            .saturating_sub(top)
            .clamp(first_row, g.kernel_h);
        let first = g.padding.saturating_sub(left).min(g.kernel_w);
        let last = (g.width + g.padding)
            .saturating_sub(left)
            .clamp(first, g.kernel_w);
        Window {
            rows: first_row..last_row,
            first,
            last,
            left,
            top,
        }
    }

    /// The flat index in one channel's plane of kernel cell `(ky, first)`.
    fn start(&self, g: &Geometry, ky: usize) -> usize {
        (self.top + ky - g.padding) * g.width + self.left + self.first - g.padding
    }
}

/// The patch matrix of an NCHW batch (see [`Im2col`]), split over threads by sample. Each patch row is
/// written in runs of a kernel row; zeros only where the window hangs over the padding.
pub fn im2col(input: &[f32], cols: &mut [f32], g: &Geometry) {
    let (out_h, out_w, patch) = (g.out_height(), g.out_width(), g.patch());
    let plane = g.height * g.width;
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    for_samples(cols, g.out_positions() * patch, &|first, part| {
        for (s, sample) in part.chunks_exact_mut(g.out_positions() * patch).enumerate() {
            let image = &input[(first + s) * g.channels * plane..][..g.channels * plane];
            let mut rows = sample.chunks_exact_mut(patch);
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let row = rows.next().expect("one row per position");
                    let w = Window::at(g, oy, ox);
                    let inside = w.rows == (0..kh) && w.first == 0 && w.last == kw;
                    if !inside {
                        row.fill(0.0);
                    }
                    let run = w.last - w.first;
                    if run == 0 {
                        continue;
                    }
                    let start = w.start(g, w.rows.start);
                    let cells = w.rows.start * kw + w.first;
                    for (channel, source) in
                        row.chunks_exact_mut(kh * kw).zip(image.chunks_exact(plane))
                    {
                        let (mut from, mut to) = (start, cells);
                        for _ in w.rows.clone() {
                            // A kernel row inside the image: the common 3 wide copied as one array.
                            match (
                                <&mut [f32; 3]>::try_from(&mut channel[to..to + run]),
                                <&[f32; 3]>::try_from(&source[from..from + run]),
                            ) {
                                (Ok(cells), Ok(values)) => *cells = *values,
                                _ => {
                                    channel[to..to + run].copy_from_slice(&source[from..from + run])
                                }
                            }
                            from += g.width;
                            to += kw;
                        }
                    }
                }
            }
        }
    });
}

/// The patch matrix's gradient summed back onto the image (see [`Col2im`]). Each input value adds up its
/// patches in row-major order of the patch positions, as the shader does; split over threads by sample.
pub fn col2im(grad_cols: &[f32], grad_input: &mut [f32], g: &Geometry) {
    let (out_h, out_w, patch) = (g.out_height(), g.out_width(), g.patch());
    let plane = g.height * g.width;
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    for_samples(grad_input, g.channels * plane, &|first, part| {
        part.fill(0.0);
        for (s, image) in part.chunks_exact_mut(g.channels * plane).enumerate() {
            let sample = &grad_cols[(first + s) * g.out_positions() * patch..];
            let mut rows = sample.chunks_exact(patch);
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let row = rows.next().expect("one row per position");
                    let w = Window::at(g, oy, ox);
                    let run = w.last - w.first;
                    if run == 0 {
                        continue;
                    }
                    let start = w.start(g, w.rows.start);
                    let cells = w.rows.start * kw + w.first;
                    for (channel, target) in
                        row.chunks_exact(kh * kw).zip(image.chunks_exact_mut(plane))
                    {
                        let (mut to, mut from) = (start, cells);
                        for _ in w.rows.clone() {
                            // The common 3-wide kernel row added as one array, element by element.
                            match (
                                <&mut [f32; 3]>::try_from(&mut target[to..to + run]),
                                <&[f32; 3]>::try_from(&channel[from..from + run]),
                            ) {
                                (Ok(values), Ok(gradients)) => {
                                    for (value, gradient) in values.iter_mut().zip(gradients) {
                                        *value += gradient;
                                    }
                                }
                                _ => {
                                    let gradients = &channel[from..from + run];
                                    for (value, &gradient) in
                                        target[to..to + run].iter_mut().zip(gradients)
                                    {
                                        *value += gradient;
                                    }
                                }
                            }
                            to += g.width;
                            from += kw;
                        }
                    }
                }
            }
        }
    });
}
