//! Convolution as a matrix product (`shaders/conv.wgsl`): `im2col` lays every patch of an NCHW batch out as a
//! row, so a conv layer is one product with the weights; `col2im` sums the product's input gradient back
//! onto the image. A patch row `p = (n, oy, ox)` holds `kk = (c, ky, kx)` in PyTorch's weight order.

use super::launch::{flat_groups, Geometry, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};

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

/// The input row and column a patch element reads, or `None` in the zero padding.
fn source_pixel(
    g: &Geometry,
    oy: usize,
    ox: usize,
    ky: usize,
    kx: usize,
) -> Option<(usize, usize)> {
    let y = (oy * g.stride + ky).checked_sub(g.padding)?;
    let x = (ox * g.stride + kx).checked_sub(g.padding)?;
    (y < g.height && x < g.width).then_some((y, x))
}

/// The patch matrix of an NCHW batch (see [`Im2col`]).
pub fn im2col(input: &[f32], cols: &mut [f32], g: &Geometry) {
    let (out_w, patch) = (g.out_width(), g.patch());
    for (p, row) in cols.chunks_exact_mut(patch).enumerate() {
        let (n, pos) = (p / g.out_positions(), p % g.out_positions());
        let (oy, ox) = (pos / out_w, pos % out_w);
        for (kk, value) in row.iter_mut().enumerate() {
            let c = kk / (g.kernel_h * g.kernel_w);
            let (ky, kx) = ((kk / g.kernel_w) % g.kernel_h, kk % g.kernel_w);
            *value = match source_pixel(g, oy, ox, ky, kx) {
                Some((y, x)) => input[((n * g.channels + c) * g.height + y) * g.width + x],
                None => 0.0,
            };
        }
    }
}

/// The patch matrix's gradient summed back onto the image (see [`Col2im`]), `ky` outer and `kx` inner
/// for each input value, as the shader sums.
pub fn col2im(grad_cols: &[f32], grad_input: &mut [f32], g: &Geometry) {
    let patch = g.patch();
    // Each input value's patches, as the shader finds them: y + padding − ky a multiple of the stride.
    let origin = |v: usize, k: usize, size: usize| -> Option<usize> {
        let s = (v + g.padding).checked_sub(k)?;
        (s % g.stride == 0 && s / g.stride < size).then_some(s / g.stride)
    };
    for (i, value) in grad_input.iter_mut().enumerate() {
        let (x, y) = (i % g.width, (i / g.width) % g.height);
        let (c, n) = (
            (i / (g.width * g.height)) % g.channels,
            i / (g.width * g.height * g.channels),
        );
        let mut sum = 0.0;
        for ky in 0..g.kernel_h {
            let Some(oy) = origin(y, ky, g.out_height()) else {
                continue;
            };
            for kx in 0..g.kernel_w {
                let Some(ox) = origin(x, kx, g.out_width()) else {
                    continue;
                };
                let p = (n * g.out_height() + oy) * g.out_width() + ox;
                sum += grad_cols[p * patch + (c * g.kernel_h + ky) * g.kernel_w + kx];
            }
        }
        *value = sum;
    }
}
