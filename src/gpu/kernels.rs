//! WGSL sources, the entry point each [`Op`] runs, its bindings, its shape uniform and its dispatch size.

use crate::activation::Activation;
use crate::backend::{Op, Region};

/// What every shader shares with Rust, written once: the `Dims` uniform, activation and loss codes, window
/// flags and the workgroup size. Joined before each file of [`SHADERS`] (see [`joined_source`]).
pub const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

/// Every shader file, by stem. Each is WGSL that validates once joined after [`PRELUDE`];
/// `tests/shaders.rs` validates them with naga.
pub const SHADERS: [(&str, &str); 6] = [
    ("matmul", include_str!("../../shaders/matmul.wgsl")),
    ("activation", include_str!("../../shaders/activation.wgsl")),
    ("loss", include_str!("../../shaders/loss.wgsl")),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
    ("optim", include_str!("../../shaders/optim.wgsl")),
    ("data", include_str!("../../shaders/data.wgsl")),
];

/// The source a pipeline is made from: [`PRELUDE`], then the shader file `stem`.
pub fn joined_source(stem: &str) -> Option<String> {
    SHADERS
        .iter()
        .find(|(name, _)| *name == stem)
        .map(|(_, source)| format!("{PRELUDE}\n{source}"))
}

/// Every entry point the backend dispatches ([`Op::name`]) and the shader file holding it: the one list.
/// `tests/shaders.rs` checks each is in its file; a name missing here is an error when its pipeline is made.
pub const ENTRY_POINTS: [(&str, &str); 15] = [
    ("matmul_bias_act", "matmul"),
    ("matmul_nt", "matmul"),
    ("matmul_tn", "matmul"),
    ("act_backward", "activation"),
    ("softmax_backward", "activation"),
    ("softmax", "activation"),
    ("loss_grad", "loss"),
    ("loss_sum", "loss"),
    ("bias_grad", "reduce"),
    ("sgd_update", "optim"),
    ("momentum_update", "optim"),
    ("adam_update", "optim"),
    ("advance_step", "optim"),
    ("gather_rows", "data"),
    ("advance_cursor", "data"),
];

/// The shader file holding an entry point, if it is one.
pub(crate) fn shader_of(entry: &str) -> Option<&'static str> {
    ENTRY_POINTS
        .iter()
        .find(|(name, _)| *name == entry)
        .map(|(_, shader)| *shader)
}

/// Whether an entry point reads the `Dims` uniform (wgpu's derived layouts drop unused bindings).
pub(crate) fn reads_dims(entry: &str) -> bool {
    entry != "advance_step"
}

/// The `Dims` uniform every shader declares at binding 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Dims {
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
}

/// Continue the sum the previous window left in the output.
pub(crate) const FLAG_ACCUMULATE: u32 = 1;
/// The last window: apply the epilogue (matmul bias and activation).
pub(crate) const FLAG_LAST: u32 = 2;

/// Invocations per workgroup of the 1-D kernels (`WORKGROUP` in the shaders).
pub(crate) const WORKGROUP: usize = 64;
/// Outputs one matmul workgroup covers along each dimension: 8 × 8 invocations (`@workgroup_size(8, 8)`),
/// each computing a 4 × 4 block (`BLOCK` in matmul.wgsl).
const MATMUL_TILE: usize = 32;
/// Most workgroups a dispatch may have in one dimension.
pub(crate) const MAX_GROUPS_PER_DIM: usize = 65535;

/// What one prepared kernel binds and dispatches.
#[derive(Clone)]
pub(crate) struct Launch {
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

/// Workgroups of [`MATMUL_TILE`]² outputs over `[m, n]`; column tiles past the per-dimension limit spill into z (see matmul.wgsl).
pub(crate) fn tiles(m: usize, n: usize) -> [usize; 3] {
    let columns = n.div_ceil(MATMUL_TILE).max(1);
    let rows = m.div_ceil(MATMUL_TILE).max(1);
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

fn act_dims(rows: usize, cols: usize, activation: Activation) -> Dims {
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

/// One dispatch covering the whole op (see [`super::windows::launches`] for how it is split).
pub(crate) fn launch(op: &Op) -> Launch {
    let mnk = |m: usize, k: usize, n: usize| Dims {
        m: m as u32,
        k: k as u32,
        n: n as u32,
        ..Dims::default()
    };
    match *op {
        Op::MatmulBiasAct {
            input,
            weights,
            bias,
            output,
            m,
            k,
            n,
            activation,
        } => Launch {
            dims: Dims {
                code: activation.code(),
                slope: activation.slope(),
                ..mnk(m, k, n)
            },
            bindings: vec![
                (1, input),
                (2, weights),
                (3, bias),
                (4, output),
                (6, vec4_view(weights)),
            ],
            groups: tiles(m, n),
        },
        Op::MatmulNt {
            grad_output,
            weights,
            grad_input,
            m,
            k,
            n,
        } => Launch {
            dims: mnk(m, k, n),
            bindings: vec![(1, grad_output), (2, weights), (4, grad_input)],
            groups: tiles(m, n),
        },
        Op::MatmulTn {
            input,
            grad_output,
            grad_weights,
            m,
            k,
            n,
        } => Launch {
            dims: mnk(m, k, n),
            bindings: vec![
                (1, input),
                (2, grad_output),
                (4, grad_weights),
                (6, vec4_view(grad_output)),
            ],
            groups: tiles(m, n),
        },
        Op::Softmax { values, rows, cols } => Launch {
            dims: act_dims(rows, cols, Activation::Softmax),
            bindings: vec![(3, values)],
            groups: flat_groups(rows),
        },
        Op::ActBackward {
            output,
            grad,
            rows,
            cols,
            activation,
        } => Launch {
            dims: act_dims(rows, cols, activation),
            bindings: vec![(1, output), (2, grad)],
            groups: if activation == Activation::Softmax {
                flat_groups(rows)
            } else {
                flat_groups(rows * cols)
            },
        },
        Op::LossGrad {
            prediction,
            target,
            grad,
            row_loss,
            row_hits,
            rows,
            cols,
            loss,
        } => Launch {
            dims: Dims {
                m: rows as u32,
                n: cols as u32,
                code: loss.code(),
                ..Dims::default()
            },
            bindings: vec![
                (1, prediction),
                (2, target),
                (3, grad),
                (4, row_loss),
                (6, row_hits),
            ],
            groups: flat_groups(rows),
        },
        Op::LossSum {
            row_loss,
            row_hits,
            stats,
            rows,
            scale,
        } => Launch {
            dims: Dims {
                m: rows as u32,
                scale,
                ..Dims::default()
            },
            bindings: vec![(4, row_loss), (6, row_hits), (5, stats)],
            groups: [1, 1, 1],
        },
        Op::BiasGrad {
            grad_output,
            grad_bias,
            rows,
            cols,
        } => Launch {
            dims: mnk(rows, 0, cols),
            bindings: vec![(1, grad_output), (2, grad_bias)],
            groups: flat_groups(cols),
        },
        Op::AdvanceStep { hyper } => Launch {
            dims: Dims::default(),
            bindings: vec![(6, hyper)],
            groups: [1, 1, 1],
        },
        Op::SgdUpdate {
            params,
            grads,
            hyper,
        } => Launch {
            dims: mnk(params.len, 0, 0),
            bindings: vec![(1, params), (2, grads), (3, hyper)],
            groups: flat_groups(params.len),
        },
        Op::MomentumUpdate {
            params,
            grads,
            velocity,
            hyper,
        } => Launch {
            dims: mnk(params.len, 0, 0),
            bindings: vec![(1, params), (2, grads), (3, hyper), (4, velocity)],
            groups: flat_groups(params.len),
        },
        Op::AdamUpdate {
            params,
            grads,
            first_moment,
            second_moment,
            hyper,
        } => Launch {
            dims: mnk(params.len, 0, 0),
            bindings: vec![
                (1, params),
                (2, grads),
                (3, hyper),
                (4, first_moment),
                (5, second_moment),
            ],
            groups: flat_groups(params.len),
        },
        Op::GatherRows {
            source,
            order,
            cursor,
            output,
            rows,
            cols,
        } => Launch {
            dims: Dims {
                m: rows as u32,
                k: (source.len / cols) as u32,
                n: cols as u32,
                stride: order.len as u32,
                ..Dims::default()
            },
            bindings: vec![(1, source), (2, order), (3, output), (4, cursor)],
            groups: flat_groups(rows * cols),
        },
        Op::AdvanceCursor { cursor, rows } => Launch {
            dims: mnk(rows, 0, 0),
            bindings: vec![(5, cursor)],
            groups: [1, 1, 1],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::loss::Loss;

    fn prelude() -> naga::Module {
        naga::front::wgsl::parse_str(PRELUDE).expect("the prelude parses")
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
