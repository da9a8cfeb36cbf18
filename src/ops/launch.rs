//! How an op is dispatched: the `Dims` shape uniform, the bindings and the workgroup grid, and the helpers
//! that split one op into several dispatches. Sums longer than [`REDUCTION_WINDOW`] run over windows of
//! the summed dimension, each continuing the last one's sum (llvmpipe ends an invocation after 65535 loop
//! iterations), and operands larger than one storage binding are bound a window at a time.

use super::Region;
use crate::activation::Activation;
pub use crate::loss::REDUCTION_WINDOW;
use crate::network::PARAM_ALIGN;

/// The `Dims` uniform every shader declares at binding 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Dims {
    pub m: u32,
    pub k: u32,
    pub n: u32,
    pub code: u32,
    pub slope: f32,
    pub scale: f32,
    /// First index of this window along the summed dimension.
    pub begin: u32,
    /// Full length of the summed dimension.
    pub stride: u32,
    /// `FLAG_ACCUMULATE` | `FLAG_LAST`.
    pub flags: u32,
    /// matmul_bias_act: where the bound window of the weights starts along the summed dimension.
    pub rhs_begin: u32,
    /// matmul_nt: first output column of this window; matmul_tn: first input column.
    pub window_offset: u32,
    /// matmul_nt: full output width; matmul_tn: full input width.
    pub window_stride: u32,
    /// Image ops (conv, pool, layout): samples in the batch, then the input's channels × height × width.
    pub batch: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    /// The output's height and width.
    pub out_height: u32,
    pub out_width: u32,
    /// The kernel's (or pooling window's) height and width, its stride and the zero padding on each side.
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub step: u32,
    pub padding: u32,
}

/// The geometry of a 2-D convolution or pooling over NCHW images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Geometry {
    /// Output height: `(height + 2·padding − kernel) / stride + 1`, as PyTorch (floor).
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }

    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }

    /// Floats in the NCHW input.
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Floats in the NCHW output of one channel per output channel (`channels` of them for a pool).
    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_positions()
    }

    /// Values in one patch: `channels · kernel_h · kernel_w` (a row of the im2col matrix).
    pub fn patch(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }

    /// Output positions per sample.
    pub fn out_positions(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// The uniform's image fields.
    pub(crate) fn dims(&self) -> Dims {
        Dims {
            batch: self.batch as u32,
            channels: self.channels as u32,
            height: self.height as u32,
            width: self.width as u32,
            out_height: self.out_height() as u32,
            out_width: self.out_width() as u32,
            kernel_h: self.kernel_h as u32,
            kernel_w: self.kernel_w as u32,
            step: self.stride as u32,
            padding: self.padding as u32,
            ..Dims::default()
        }
    }
}

/// Continue the sum the previous window left in the output.
pub(crate) const FLAG_ACCUMULATE: u32 = 1;
/// The last window: apply the epilogue (matmul bias and activation).
pub(crate) const FLAG_LAST: u32 = 2;
/// loss_sum: scale by the class-weight sum the step left in `stats`.
pub(crate) const FLAG_WEIGHTED: u32 = 4;

/// Invocations per workgroup of the 1-D kernels (`WORKGROUP` in the shaders).
pub(crate) const WORKGROUP: usize = 64;
/// Outputs one matmul invocation computes along each dimension (`BLOCK` in matmul.wgsl).
const MATMUL_BLOCK: usize = 4;

/// Invocations of one matmul workgroup along output columns (`x`) and rows (`y`): matmul.wgsl's `TILE_X`
/// and `TILE_Y` pipeline constants. Every shape computes the same sums in the same order; which runs
/// fastest depends on the adapter, so the wgpu backend times the [`Workgroup::CANDIDATES`] (src/gpu/tune.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Workgroup {
    pub x: u32,
    pub y: u32,
    /// Through workgroup memory (`matmul_bias_act_tiled`, 16 × 16 only, the forward product only): for
    /// hardware GPUs, where the invocations of a workgroup share what they load.
    pub tiled: bool,
    /// Both operands read as vec4s along the summed dimension (`matmul_nt_k4`, `matmul_nt` only, when
    /// that dimension is a multiple of 4): a quarter of the loads.
    pub vector_k: bool,
}

impl Workgroup {
    /// The shape used when none is chosen (and with `WGTRAIN_TUNE=off`).
    pub const DEFAULT: Workgroup = Workgroup::blocked(8, 8);
    /// The shapes the wgpu backend times, the default first: square, wide, tall, and large.
    pub const CANDIDATES: [Workgroup; 5] = [
        Workgroup::DEFAULT,
        Workgroup::blocked(16, 4),
        Workgroup::blocked(4, 16),
        Workgroup::blocked(16, 16),
        Workgroup::blocked(32, 2),
    ];
    /// `matmul_nt`'s candidates: [`Workgroup::CANDIDATES`] and the default shape with vec4 loads along
    /// the summed dimension.
    /// The vec4 variant comes first: it is `matmul_nt`'s default wherever k allows it (2.0-2.9x the
    /// plain kernel on llvmpipe), and the one the others must beat.
    pub const NT_CANDIDATES: [Workgroup; 6] = [
        Workgroup::DEFAULT.along_k(),
        Workgroup::DEFAULT,
        Workgroup::blocked(16, 4),
        Workgroup::blocked(4, 16),
        Workgroup::blocked(16, 16),
        Workgroup::blocked(32, 2),
    ];
    /// The forward product's candidates: [`Workgroup::CANDIDATES`] and [`Workgroup::TILED`].
    pub const FORWARD_CANDIDATES: [Workgroup; 6] = [
        Workgroup::DEFAULT,
        Workgroup::blocked(16, 4),
        Workgroup::blocked(4, 16),
        Workgroup::blocked(16, 16),
        Workgroup::blocked(32, 2),
        Workgroup::TILED,
    ];
    /// 16 × 16 invocations through workgroup memory, 64 × 64 outputs a workgroup.
    pub const TILED: Workgroup = Workgroup {
        x: 16,
        y: 16,
        tiled: true,
        vector_k: false,
    };

    /// `x × y` invocations, each summing its own block from storage.
    pub const fn blocked(x: u32, y: u32) -> Workgroup {
        Workgroup {
            x,
            y,
            tiled: false,
            vector_k: false,
        }
    }

    /// This shape with vec4 loads along the summed dimension.
    pub const fn along_k(self) -> Workgroup {
        Workgroup {
            vector_k: true,
            ..self
        }
    }

    /// The pipeline constants that build matmul.wgsl's entry points with this shape.
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        vec![("TILE_X", f64::from(self.x)), ("TILE_Y", f64::from(self.y))]
    }
}

impl std::fmt::Display for Workgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.x, self.y)?;
        if self.tiled {
            write!(f, "-tiled")?;
        }
        if self.vector_k {
            write!(f, "-k4")?;
        }
        Ok(())
    }
}
/// Most workgroups a dispatch may have in one dimension.
pub(crate) const MAX_GROUPS_PER_DIM: usize = 65535;

/// What one prepared kernel binds and dispatches.
#[derive(Clone)]
pub struct Launch {
    pub dims: Dims,
    pub bindings: Vec<(u32, Region)>,
    pub groups: [usize; 3],
}

/// Spreads `groups` 1-D workgroups over x and y so neither passes the per-dimension limit; the shaders
/// rebuild the flat index as `gid.x + gid.y * num_workgroups.x * WORKGROUP` and skip the overhang.
pub(crate) fn flat_groups(items: usize) -> [usize; 3] {
    let groups = items.div_ceil(WORKGROUP).max(1);
    if groups <= MAX_GROUPS_PER_DIM {
        [groups, 1, 1]
    } else {
        [MAX_GROUPS_PER_DIM, groups.div_ceil(MAX_GROUPS_PER_DIM), 1]
    }
}

/// Workgroups of `shape` over `[m, n]`, each covering `4·x` columns and `4·y` rows; column tiles past the
/// per-dimension limit spill into z (see matmul.wgsl).
pub(crate) fn tiles(m: usize, n: usize, shape: Workgroup) -> [usize; 3] {
    let columns = n.div_ceil(MATMUL_BLOCK * shape.x as usize).max(1);
    let rows = m.div_ceil(MATMUL_BLOCK * shape.y as usize).max(1);
    if columns <= MAX_GROUPS_PER_DIM {
        [columns, rows, 1]
    } else {
        [
            MAX_GROUPS_PER_DIM,
            rows,
            columns.div_ceil(MAX_GROUPS_PER_DIM),
        ]
    }
}

pub(crate) fn act_dims(rows: usize, cols: usize, activation: Activation) -> Dims {
    Dims {
        m: rows as u32,
        n: cols as u32,
        code: activation.code(),
        slope: activation.slope(),
        ..Dims::default()
    }
}

/// The same floats as `region`, rounded up to whole vec4s, for a second, `array<vec4<f32>>` binding of it
/// (buffers are allocated in whole vec4s, so the rounding stays inside the buffer).
pub(crate) fn vec4_view(region: Region) -> Region {
    Region {
        len: region.len.next_multiple_of(4),
        ..region
    }
}

/// The launch as the only dispatch of its op: it is the last window of any sum.
pub(crate) fn whole(mut launch: Launch) -> Launch {
    launch.dims.flags |= FLAG_LAST;
    launch
}

/// `n` rounded down to a multiple of [`PARAM_ALIGN`] (so window offsets stay bindable), at least that much.
pub(crate) fn aligned(n: usize) -> usize {
    (n / PARAM_ALIGN * PARAM_ALIGN).max(PARAM_ALIGN)
}

/// `launch` repeated over windows `[begin, begin + len)` of a sum of `full` terms, `per` at a time.
pub(crate) fn sum_windows(
    launch: &Launch,
    full: usize,
    per: usize,
    shape: impl Fn(&mut Launch, usize, usize),
) -> Vec<Launch> {
    if full == 0 {
        return vec![launch.clone()];
    }
    (0..full)
        .step_by(per)
        .map(|begin| {
            let len = per.min(full - begin);
            let mut window = launch.clone();
            window.dims.begin = begin as u32;
            window.dims.flags = if begin > 0 { FLAG_ACCUMULATE } else { 0 };
            if begin + len == full {
                window.dims.flags |= FLAG_LAST;
            }
            shape(&mut window, begin, len);
            window
        })
        .collect()
}

/// Replaces the region bound at `binding`, and its vec4 view (binding 6) when `binding` is the rhs (2).
pub(crate) fn rebind(launch: &mut Launch, binding: u32, region: Region) {
    for entry in &mut launch.bindings {
        if entry.0 == binding {
            entry.1 = region;
        } else if binding == 2 && entry.0 == 6 {
            entry.1 = vec4_view(region);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::loss::Loss;

    fn prelude() -> naga::Module {
        naga::front::wgsl::parse_str(crate::ops::PRELUDE).expect("the prelude parses")
    }

    /// The value of a `u32` constant of the prelude.
    fn constant(module: &naga::Module, name: &str) -> u32 {
        let (_, c) = module
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("prelude.wgsl lacks `{name}`"));
        match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => v,
            ref other => panic!("`{name}` is {other:?}, expected a u32 literal"),
        }
    }

    #[test]
    fn prelude_codes_agree_with_rust() {
        let module = prelude();
        for activation in [
            Activation::Linear,
            Activation::Relu,
            Activation::LeakyRelu(0.01),
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Softmax,
        ] {
            let name = format!("ACT_{}", activation.name().to_uppercase());
            assert_eq!(constant(&module, &name), activation.code(), "{name}");
        }
        for loss in [Loss::Sse, Loss::Mse, Loss::Bce, Loss::Ce] {
            let name = format!("LOSS_{}", loss.name().to_uppercase());
            assert_eq!(constant(&module, &name), loss.code(), "{name}");
        }
        assert_eq!(constant(&module, "FLAG_ACCUMULATE"), FLAG_ACCUMULATE);
        assert_eq!(constant(&module, "FLAG_LAST"), FLAG_LAST);
        assert_eq!(constant(&module, "FLAG_WEIGHTED"), FLAG_WEIGHTED);
        assert_eq!(constant(&module, "WORKGROUP") as usize, WORKGROUP);
    }

    #[test]
    fn prelude_dims_has_the_rust_layout() {
        let module = prelude();
        let members = module
            .types
            .iter()
            .find_map(|(_, t)| match &t.inner {
                naga::TypeInner::Struct { members, span } if t.name.as_deref() == Some("Dims") => {
                    Some((members.clone(), *span))
                }
                _ => None,
            })
            .expect("prelude.wgsl declares Dims");
        let rust = [
            ("m", std::mem::offset_of!(Dims, m)),
            ("k", std::mem::offset_of!(Dims, k)),
            ("n", std::mem::offset_of!(Dims, n)),
            ("code", std::mem::offset_of!(Dims, code)),
            ("slope", std::mem::offset_of!(Dims, slope)),
            ("scale", std::mem::offset_of!(Dims, scale)),
            ("begin", std::mem::offset_of!(Dims, begin)),
            ("stride", std::mem::offset_of!(Dims, stride)),
            ("flags", std::mem::offset_of!(Dims, flags)),
            ("rhs_begin", std::mem::offset_of!(Dims, rhs_begin)),
            ("window_offset", std::mem::offset_of!(Dims, window_offset)),
            ("window_stride", std::mem::offset_of!(Dims, window_stride)),
            ("batch", std::mem::offset_of!(Dims, batch)),
            ("channels", std::mem::offset_of!(Dims, channels)),
            ("height", std::mem::offset_of!(Dims, height)),
            ("width", std::mem::offset_of!(Dims, width)),
            ("out_height", std::mem::offset_of!(Dims, out_height)),
            ("out_width", std::mem::offset_of!(Dims, out_width)),
            ("kernel_h", std::mem::offset_of!(Dims, kernel_h)),
            ("kernel_w", std::mem::offset_of!(Dims, kernel_w)),
            ("step", std::mem::offset_of!(Dims, step)),
            ("padding", std::mem::offset_of!(Dims, padding)),
        ];
        let wgsl: Vec<(String, usize)> = members
            .0
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
            .collect();
        let rust: Vec<(String, usize)> = rust.iter().map(|(n, o)| (n.to_string(), *o)).collect();
        assert_eq!(wgsl, rust);
        assert_eq!(members.1 as usize, std::mem::size_of::<Dims>());
    }
}
