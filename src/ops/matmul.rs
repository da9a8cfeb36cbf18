//! The matrix products of a dense layer (`shaders/matmul.wgsl`): the forward product with its bias and
//! activation fused, and the two products of its backward pass.

use super::launch::{
    aligned, rebind, sum_windows, tiles, vec4_view, whole, Dims, Launch, Workgroup,
    REDUCTION_WINDOW,
};
use super::{reads, writes, HostBuffers, Kernel, Op, Operand, Region, Shader};
use crate::activation::Activation;
use crate::host::gemm::{gemm, gemm_then};

pub const SHADER: Shader = Shader {
    stem: "matmul",
    source: include_str!("../../shaders/matmul.wgsl"),
};

/// The shape an op runs with: its own, or the default.
fn shape(workgroup: Option<Workgroup>) -> Workgroup {
    workgroup.unwrap_or(Workgroup::DEFAULT)
}

/// Products of fewer multiply-adds take about the same time whatever the workgroup shape, so they are not
/// timed.
const TUNED_MIN_MACS: usize = 1 << 18;

/// The key a product's measured shape is kept under: its entry point and the power of two at or above
/// each dimension. `None` when the op's shape is fixed or the product is small.
fn tuning_key(
    name: &str,
    workgroup: Option<Workgroup>,
    (m, k, n): (usize, usize, usize),
) -> Option<String> {
    let class = |d: usize| d.next_power_of_two();
    (workgroup.is_none() && m.saturating_mul(k).saturating_mul(n) >= TUNED_MIN_MACS)
        .then(|| format!("{name} m{} k{} n{}", class(m), class(k), class(n)))
}

/// The [`Kernel`] methods every product shares: its workgroup shape as pipeline constants, the shapes
/// worth timing, and the key the choice is kept under.
macro_rules! workgroup_methods {
    ($candidates:expr) => {
        fn constants(&self) -> Vec<(&'static str, f64)> {
            shape(self.workgroup).constants()
        }

        fn variants(&self) -> Vec<Op> {
            if self.tuning_key().is_none() {
                return Vec::new();
            }
            $candidates
                .iter()
                .filter(|&&w| self.supports(w))
                .map(|&w| {
                    Op::from(Self {
                        workgroup: Some(w),
                        ..*self
                    })
                })
                .collect()
        }

        fn tuning_key(&self) -> Option<String> {
            tuning_key(Self::NAME, self.workgroup, (self.m, self.k, self.n))
        }

        fn variant_name(&self) -> Option<String> {
            Some(self.resolved().to_string())
        }
    };
}

fn mnk(m: usize, k: usize, n: usize) -> Dims {
    Dims {
        m: m as u32,
        k: k as u32,
        n: n as u32,
        ..Dims::default()
    }
}

/// `output[m, n] = activation(input[m, k] · weights[k, n] + bias[n])` (elementwise activations only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulBiasAct {
    pub input: Region,
    pub weights: Region,
    pub bias: Region,
    pub output: Region,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub activation: Activation,
    /// The workgroup shape; `None` lets the backend choose (see [`Kernel::variants`]).
    pub workgroup: Option<Workgroup>,
}

impl MatmulBiasAct {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "matmul_bias_act";
}

impl MatmulBiasAct {
    /// The entry point of the workgroup-memory variant ([`Workgroup::TILED`]).
    pub const TILED_NAME: &'static str = "matmul_bias_act_tiled";

    /// Whether `workgroup` is a way to run this product.
    fn supports(&self, workgroup: Workgroup) -> bool {
        !workgroup.vector_k
    }

    /// The shape this op runs in.
    fn resolved(&self) -> Workgroup {
        shape(self.workgroup)
    }
}

impl Kernel for MatmulBiasAct {
    fn name(&self) -> &'static str {
        if shape(self.workgroup).tiled {
            Self::TILED_NAME
        } else {
            Self::NAME
        }
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    workgroup_methods!(Workgroup::FORWARD_CANDIDATES);

    fn operands(&self) -> Vec<Operand> {
        let (m, k, n) = (self.m, self.k, self.n);
        vec![
            reads(self.input, m * k),
            reads(self.weights, k * n),
            reads(self.bias, n),
            writes(self.output, m * n),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (m, k, n) = (self.m, self.k, self.n);
        host.write([(self.output, m * n)], |host, [output]| {
            matmul_bias_act(
                host.read(self.input, m * k),
                host.read(self.weights, k * n),
                host.read(self.bias, n),
                output,
                (m, k, n),
                self.activation,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                code: self.activation.code(),
                slope: self.activation.slope(),
                ..mnk(self.m, self.k, self.n)
            },
            bindings: vec![
                (1, self.input),
                (2, self.weights),
                (3, self.bias),
                (4, self.output),
            ]
            .into_iter()
            // The tiled entry point reads both operands as floats only.
            .chain(
                (!shape(self.workgroup).tiled)
                    .then(|| [(6, vec4_view(self.weights)), (7, vec4_view(self.input))])
                    .into_iter()
                    .flatten(),
            )
            .collect(),
            groups: tiles(self.m, self.n, shape(self.workgroup)),
        }
    }

    fn launches(&self, max_binding: usize) -> Vec<Launch> {
        let (weights, k, n) = (self.weights, self.k, self.n);
        let mut base = whole(self.launch());
        base.dims.stride = k as u32;
        if weights.len <= max_binding {
            return sum_windows(&base, k, REDUCTION_WINDOW, |w, _, len| {
                w.dims.k = len as u32
            });
        }
        // Weight rows [begin, begin + len) bound one window at a time.
        let per = aligned(max_binding / n.max(1)).min(REDUCTION_WINDOW);
        sum_windows(&base, k, per, |w, begin, len| {
            w.dims.k = len as u32;
            w.dims.rhs_begin = begin as u32;
            rebind(
                w,
                2,
                Region {
                    offset: weights.offset + begin * n,
                    len: len * n,
                    ..weights
                },
            );
        })
    }
}

/// `grad_input[m, n] = grad_output[m, k] · weights[n, k]ᵀ` — backprop to a layer's input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulNt {
    pub grad_output: Region,
    pub weights: Region,
    pub grad_input: Region,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// The workgroup shape; `None` lets the backend choose (see [`Kernel::variants`]).
    pub workgroup: Option<Workgroup>,
}

impl MatmulNt {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "matmul_nt";
    /// The entry point of the variant with vec4 loads along the summed dimension.
    pub const K4_NAME: &'static str = "matmul_nt_k4";

    /// Whether `workgroup` is a way to run this product: vec4 loads along k need k, and both operands'
    /// offsets, to be multiples of 4.
    fn supports(&self, workgroup: Workgroup) -> bool {
        !workgroup.tiled
            && (!workgroup.vector_k
                || (self.k.is_multiple_of(4)
                    && self.grad_output.offset.is_multiple_of(4)
                    && self.weights.offset.is_multiple_of(4)))
    }

    /// Whether this runs as `matmul_nt_k4`: asked for (or no shape chosen: it is the default), and
    /// possible for this shape.
    fn along_k(&self) -> bool {
        let workgroup = self.workgroup.unwrap_or(Workgroup::DEFAULT.along_k());
        workgroup.vector_k && self.supports(workgroup)
    }

    /// The shape this op runs in: vec4 loads along k only where [`Self::along_k`].
    fn resolved(&self) -> Workgroup {
        Workgroup {
            vector_k: self.along_k(),
            ..shape(self.workgroup)
        }
    }
}

impl Kernel for MatmulNt {
    fn name(&self) -> &'static str {
        if self.along_k() {
            Self::K4_NAME
        } else {
            Self::NAME
        }
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    workgroup_methods!(Workgroup::NT_CANDIDATES);

    fn operands(&self) -> Vec<Operand> {
        let (m, k, n) = (self.m, self.k, self.n);
        vec![
            reads(self.grad_output, m * k),
            reads(self.weights, n * k),
            writes(self.grad_input, m * n),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (m, k, n) = (self.m, self.k, self.n);
        host.write([(self.grad_input, m * n)], |host, [grad_input]| {
            matmul_nt(
                host.read(self.grad_output, m * k),
                host.read(self.weights, n * k),
                grad_input,
                (m, k, n),
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: mnk(self.m, self.k, self.n),
            // matmul_nt_k4 reads both operands only through their vec4 views.
            bindings: if self.along_k() {
                vec![
                    (4, self.grad_input),
                    (6, vec4_view(self.weights)),
                    (7, vec4_view(self.grad_output)),
                ]
            } else {
                vec![
                    (1, self.grad_output),
                    (2, self.weights),
                    (4, self.grad_input),
                ]
            },
            groups: tiles(self.m, self.n, shape(self.workgroup)),
        }
    }

    fn launches(&self, max_binding: usize) -> Vec<Launch> {
        let (weights, m, k, n) = (self.weights, self.m, self.k, self.n);
        let mut base = whole(self.launch());
        base.dims.stride = k as u32;
        base.dims.window_stride = n as u32;
        let per_column = if weights.len <= max_binding {
            n
        } else {
            aligned(max_binding / k.max(1))
        };
        (0..n.max(1))
            .step_by(per_column.max(1))
            .flat_map(|first| {
                let columns = per_column.min(n - first.min(n));
                let mut block = base.clone();
                if per_column < n {
                    block.dims.n = columns as u32;
                    block.dims.window_offset = first as u32;
                    block.groups = tiles(m, columns, shape(self.workgroup));
                    rebind(
                        &mut block,
                        2,
                        Region {
                            offset: weights.offset + first * k,
                            len: columns * k,
                            ..weights
                        },
                    );
                }
                sum_windows(&block, k, REDUCTION_WINDOW, |w, _, len| {
                    w.dims.k = len as u32
                })
            })
            .collect()
    }
}

/// `grad_weights[m, n] = input[k, m]ᵀ · grad_output[k, n]` — a layer's weight gradient over the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulTn {
    pub input: Region,
    pub grad_output: Region,
    pub grad_weights: Region,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// The workgroup shape; `None` lets the backend choose (see [`Kernel::variants`]).
    pub workgroup: Option<Workgroup>,
}

impl MatmulTn {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "matmul_tn";

    /// Whether `workgroup` is a way to run this product.
    fn supports(&self, workgroup: Workgroup) -> bool {
        !workgroup.tiled && !workgroup.vector_k
    }

    /// The shape this op runs in.
    fn resolved(&self) -> Workgroup {
        shape(self.workgroup)
    }
}

impl Kernel for MatmulTn {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    workgroup_methods!(Workgroup::CANDIDATES);

    fn operands(&self) -> Vec<Operand> {
        let (m, k, n) = (self.m, self.k, self.n);
        vec![
            reads(self.input, k * m),
            reads(self.grad_output, k * n),
            writes(self.grad_weights, m * n),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (m, k, n) = (self.m, self.k, self.n);
        host.write([(self.grad_weights, m * n)], |host, [grad_weights]| {
            matmul_tn(
                host.read(self.input, k * m),
                host.read(self.grad_output, k * n),
                grad_weights,
                (m, k, n),
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: mnk(self.m, self.k, self.n),
            bindings: vec![
                (1, self.input),
                (2, self.grad_output),
                (4, self.grad_weights),
                (6, vec4_view(self.grad_output)),
                (7, vec4_view(self.input)),
            ],
            groups: tiles(self.m, self.n, shape(self.workgroup)),
        }
    }

    fn launches(&self, max_binding: usize) -> Vec<Launch> {
        let (grad_weights, m, k, n) = (self.grad_weights, self.m, self.k, self.n);
        let mut base = whole(self.launch());
        base.dims.window_stride = m as u32;
        let per_row = if grad_weights.len <= max_binding {
            m
        } else {
            aligned(max_binding / n.max(1))
        };
        (0..m.max(1))
            .step_by(per_row.max(1))
            .flat_map(|first| {
                let rows = per_row.min(m - first.min(m));
                let mut block = base.clone();
                if per_row < m {
                    block.dims.m = rows as u32;
                    block.dims.window_offset = first as u32;
                    block.groups = tiles(rows, n, shape(self.workgroup));
                    let window = Region {
                        offset: grad_weights.offset + first * n,
                        len: rows * n,
                        ..grad_weights
                    };
                    rebind(&mut block, 4, window);
                }
                sum_windows(&block, k, REDUCTION_WINDOW, |w, _, len| {
                    w.dims.k = len as u32
                })
            })
            .collect()
    }
}

/// `output = activation(input · weights + bias)`; `input` is `[m, k]`, `weights` `[k, n]`.
pub fn matmul_bias_act(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    (m, k, n): (usize, usize, usize),
    activation: Activation,
) {
    let bias_act = |rows: &mut [f32]| {
        for row in rows.chunks_exact_mut(n) {
            for (y, &b) in row.iter_mut().zip(bias) {
                *y = activation.apply(*y + b);
            }
        }
    };
    gemm_then((m, k, n), input, (k, 1), weights, (n, 1), output, &bias_act);
}

/// `grad_input = grad_output · weightsᵀ`; `grad_output` is `[m, k]`, `weights` `[n, k]`.
pub fn matmul_nt(
    grad_output: &[f32],
    weights: &[f32],
    grad_input: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    gemm((m, k, n), grad_output, (k, 1), weights, (1, k), grad_input);
}

/// `grad_weights = inputᵀ · grad_output`; `input` is `[k, m]`, `grad_output` `[k, n]`.
pub fn matmul_tn(
    input: &[f32],
    grad_output: &[f32],
    grad_weights: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    gemm((m, k, n), input, (1, m), grad_output, (n, 1), grad_weights);
}
