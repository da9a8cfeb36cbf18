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

/// The patch matrix of an NCHW batch (see [`Im2col`]), split over threads by sample.
pub fn im2col(input: &[f32], cols: &mut [f32], g: &Geometry) {
    let (out_h, out_w, patch) = (g.out_height(), g.out_width(), g.patch());
    let plane = g.height * g.width;
    for_samples(cols, g.out_positions() * patch, &|first, part| {
        for (s, sample) in part.chunks_exact_mut(g.out_positions() * patch).enumerate() {
            let image = &input[(first + s) * g.channels * plane..][..g.channels * plane];
            let mut rows = sample.chunks_exact_mut(patch);
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let row = rows.next().expect("one row per position");
                    // The kernel columns that land inside the image: kx in first..last.
                    let left = ox * g.stride;
                    let first = g.padding.saturating_sub(left).min(g.kernel_w);
                    let last = (g.width + g.padding)
                        .saturating_sub(left)
                        .clamp(first, g.kernel_w);
                    let mut at = 0;
                    for c in 0..g.channels {
                        for ky in 0..g.kernel_h {
                            let cells = &mut row[at..at + g.kernel_w];
                            at += g.kernel_w;
                            // Below 0 wraps around past the height: both read the zero padding.
                            let y = (oy * g.stride + ky).wrapping_sub(g.padding);
                            if y >= g.height {
                                cells.fill(0.0);
                                continue;
                            }
                            let line = c * plane + y * g.width;
                            cells[..first].fill(0.0);
                            cells[last..].fill(0.0);
                            if first < last {
                                let x0 = line + left + first - g.padding;
                                // A loop, not copy_from_slice: the runs are a few floats, shorter than a
                                // memmove call is worth.
                                let from = &image[x0..x0 + (last - first)];
                                for (cell, &value) in cells[first..last].iter_mut().zip(from) {
                                    *cell = value;
                                }
                            }
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
    for_samples(grad_input, g.channels * plane, &|first, part| {
        part.fill(0.0);
        for (s, image) in part.chunks_exact_mut(g.channels * plane).enumerate() {
            let sample = &grad_cols[(first + s) * g.out_positions() * patch..];
            let mut rows = sample.chunks_exact(patch);
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let row = rows.next().expect("one row per position");
                    let mut kk = 0;
                    for c in 0..g.channels {
                        for ky in 0..g.kernel_h {
                            let y = (oy * g.stride + ky).wrapping_sub(g.padding);
                            for kx in 0..g.kernel_w {
                                let x = (ox * g.stride + kx).wrapping_sub(g.padding);
                                if y < g.height && x < g.width {
                                    image[c * plane + y * g.width + x] += row[kk];
                                }
                                kk += 1;
                            }
                        }
                    }
                }
            }
        }
    });
}
