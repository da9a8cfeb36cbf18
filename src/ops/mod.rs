//! Ops as units. Each op is a struct in the file named after its shader: `src/ops/<stem>.rs` holds the
//! struct, its CPU reference and its launch description; `shaders/<stem>.wgsl` holds its WGSL entry point
//! of the same name; `tests/ops/<stem>.rs` holds its GPU-vs-CPU parity test, again of the same name.
//! [`Op`] is the closed list of them, written once in the `ops!` invocation below; everything else
//! reaches an op through [`Kernel`], so no other code matches over every op.

pub mod activation;
pub mod confusion;
pub mod conv;
pub mod conv2d;
pub mod data;
pub mod dropout;
pub mod launch;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod reduce;

pub use activation::{ActBackward, ActForward, Softmax, SoftmaxBackward};
pub use confusion::ConfusionCounts;
pub use conv::{Col2im, Im2col};
pub use conv2d::{Conv2dBackwardInput, Conv2dBackwardWeights, Conv2dForward, ConvAlgorithm};
pub use data::{AdvanceCursor, GatherRows};
pub use dropout::Dropout;
pub use launch::{Geometry, Launch, Workgroup};
pub use layout::TransposeBatched;
pub use loss::{ClassWeightSum, CrossEntropyGrad, LossGrad, LossSum};
pub use matmul::{MatmulBiasAct, MatmulNt, MatmulTn};
pub use norm::{
    BatchNormApply, BatchNormBackward, BatchNormBackwardSums, BatchNormRunning, BatchNormStats,
    NormShape,
};
pub use optim::{
    AdamUpdate, AdamWUpdate, AdvanceStep, GradNormScale, MomentumUpdate, NesterovUpdate,
    RmspropUpdate, SgdUpdate,
};
pub use pool::{AvgPool, AvgPoolBackward, MaxPool, MaxPoolBackward};
pub use reduce::{BiasGrad, ChannelSum};

use crate::error::{Error, Result};

/// A backend buffer of f32 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferId(pub(crate) usize);

/// `len` floats of `buffer` starting at float `offset`. Offsets of regions bound to GPU kernels must be
/// multiples of [`crate::network::PARAM_ALIGN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub buffer: BufferId,
    pub offset: usize,
    pub len: usize,
}

impl BufferId {
    /// The region of `len` floats at the start of this buffer.
    pub fn region(self, len: usize) -> Region {
        Region {
            buffer: self,
            offset: 0,
            len,
        }
    }
}

/// One operand of an op: the region, the floats the op touches in it, and whether it writes there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand {
    pub region: Region,
    pub needed: usize,
    pub written: bool,
}

/// An operand the op only reads.
pub(crate) fn reads(region: Region, needed: usize) -> Operand {
    Operand {
        region,
        needed,
        written: false,
    }
}

/// An operand the op writes (and may read).
pub(crate) fn writes(region: Region, needed: usize) -> Operand {
    Operand {
        region,
        needed,
        written: true,
    }
}

/// A WGSL file: its stem (`shaders/<stem>.wgsl`) and its text, compiled into the binary.
#[derive(Debug)]
pub struct Shader {
    pub stem: &'static str,
    pub source: &'static str,
}

/// What every shader shares with Rust, written once: the `Dims` uniform, activation and loss codes, window
/// flags and the workgroup size. Joined before each shader (see [`Shader::joined`]).
pub const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

impl Shader {
    /// The source a pipeline is made from: [`PRELUDE`], then this file.
    pub fn joined(&self) -> String {
        format!("{PRELUDE}\n{}", self.source)
    }
}

/// Every shader file, one per file in this directory.
pub const SHADERS: [&Shader; 13] = [
    &activation::SHADER,
    &confusion::SHADER,
    &conv::SHADER,
    &conv2d::SHADER,
    &data::SHADER,
    &dropout::SHADER,
    &layout::SHADER,
    &loss::SHADER,
    &matmul::SHADER,
    &norm::SHADER,
    &optim::SHADER,
    &pool::SHADER,
    &reduce::SHADER,
];

/// What a backend needs to know about one op.
pub trait Kernel {
    /// The shared name of the CPU function and the WGSL entry point.
    fn name(&self) -> &'static str;
    /// The shader file holding the entry point.
    fn shader(&self) -> &'static Shader;
    /// Every operand, for bounds and aliasing checks (`check_op`).
    fn operands(&self) -> Vec<Operand>;
    /// The CPU reference, on host memory.
    fn run_cpu(&self, host: &mut HostBuffers);
    /// One dispatch covering the whole op.
    fn launch(&self) -> Launch;
    /// The dispatches when one storage binding holds at most `max_binding` floats and a summed dimension
    /// runs in windows (see [`launch`]); one dispatch unless the op says otherwise.
    fn launches(&self, max_binding: usize) -> Vec<Launch> {
        let _ = max_binding;
        vec![launch::whole(self.launch())]
    }
    /// `(what, columns, loops per column)` for an op that needs a whole row in one invocation: llvmpipe
    /// stops a shader after 65535 loop iterations, so such rows are refused there when too long.
    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        None
    }
    /// Whether the entry point reads the `Dims` uniform (wgpu's derived layouts drop unused bindings).
    fn reads_dims(&self) -> bool {
        true
    }
    /// The pipeline constants (WGSL `override`s) the entry point is built with.
    fn constants(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Ways to run this op that compute the same values (matmul workgroup shapes), for a backend that
    /// times them and keeps the fastest; empty when the op's way is fixed.
    fn variants(&self) -> Vec<Op> {
        Vec::new()
    }
    /// Ops with the same key share one measured choice among their [`Kernel::variants`]: the entry point
    /// and the class of its shape. `None` when there is nothing to choose.
    fn tuning_key(&self) -> Option<String> {
        None
    }
    /// What distinguishes this variant from the others (`16x4`), for reports.
    fn variant_name(&self) -> Option<String> {
        None
    }
}

/// Entry points that run an op of [`ENTRY_POINTS`] another way, computing the same values: `(entry point,
/// its shader, the op's entry point)`. They share the op's CPU reference and have parity tests of their own.
pub const VARIANT_ENTRY_POINTS: &[(&str, &Shader, &str)] = &[
    (
        matmul::MatmulBiasAct::TILED_NAME,
        &matmul::SHADER,
        matmul::MatmulBiasAct::NAME,
    ),
    (
        matmul::MatmulNt::K4_NAME,
        &matmul::SHADER,
        matmul::MatmulNt::NAME,
    ),
];

/// Declares [`Op`] from the op structs: the only place that lists every op.
macro_rules! ops {
    ($($variant:ident in $module:ident),* $(,)?) => {
        /// One step of a training or inference graph. Matrices are row-major f32.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Op {
            $($variant($module::$variant)),*
        }

        impl Op {
            /// The op as a [`Kernel`]: the one match over every op.
            pub fn kernel(&self) -> &dyn Kernel {
                match self {
                    $(Op::$variant(op) => op),*
                }
            }
        }

        /// Every op's entry point and the shader holding it.
        pub const ENTRY_POINTS: &[(&str, &Shader)] = &[$(($module::$variant::NAME, &$module::SHADER)),*];

        $(impl From<$module::$variant> for Op {
            fn from(op: $module::$variant) -> Op {
                Op::$variant(op)
            }
        })*
    };
}

ops! {
    MatmulBiasAct in matmul,
    MatmulNt in matmul,
    MatmulTn in matmul,
    ActForward in activation,
    Softmax in activation,
    ActBackward in activation,
    SoftmaxBackward in activation,
    LossGrad in loss,
    LossSum in loss,
    ClassWeightSum in loss,
    CrossEntropyGrad in loss,
    ConfusionCounts in confusion,
    BiasGrad in reduce,
    ChannelSum in reduce,
    AdvanceStep in optim,
    GradNormScale in optim,
    SgdUpdate in optim,
    MomentumUpdate in optim,
    NesterovUpdate in optim,
    AdamUpdate in optim,
    AdamWUpdate in optim,
    RmspropUpdate in optim,
    GatherRows in data,
    AdvanceCursor in data,
    Im2col in conv,
    Col2im in conv,
    Conv2dForward in conv2d,
    Conv2dBackwardInput in conv2d,
    Conv2dBackwardWeights in conv2d,
    TransposeBatched in layout,
    MaxPool in pool,
    AvgPool in pool,
    MaxPoolBackward in pool,
    AvgPoolBackward in pool,
    Dropout in dropout,
    BatchNormStats in norm,
    BatchNormApply in norm,
    BatchNormRunning in norm,
    BatchNormBackwardSums in norm,
    BatchNormBackward in norm,
}

impl Op {
    /// The shared name of the CPU function and the WGSL entry point.
    pub fn name(&self) -> &'static str {
        self.kernel().name()
    }
}

/// Host memory the CPU references run on: one `Vec<f32>` per buffer.
#[derive(Default)]
pub struct HostBuffers {
    pub(crate) buffers: Vec<Vec<f32>>,
}

impl HostBuffers {
    /// `len` floats of `region`.
    pub fn read(&self, region: Region, len: usize) -> &[f32] {
        &self.buffers[region.buffer.0][region.offset..region.offset + len]
    }

    /// Calls `f` with the written regions as slices (their buffers moved out meanwhile, no copy) while it
    /// reads the rest through `&self`. `check_op` has made sure no written buffer is read.
    pub fn write<const W: usize>(
        &mut self,
        written: [(Region, usize); W],
        f: impl FnOnce(&Self, [&mut [f32]; W]),
    ) {
        let mut taken: [Vec<f32>; W] =
            written.map(|(r, _)| std::mem::take(&mut self.buffers[r.buffer.0]));
        let mut parts = taken.iter_mut().zip(written.iter());
        let slices: [&mut [f32]; W] = std::array::from_fn(|_| {
            let (buffer, &(r, len)) = parts.next().expect("one part per written region");
            &mut buffer[r.offset..r.offset + len]
        });
        f(self, slices);
        for (buffer, (r, _)) in taken.into_iter().zip(written) {
            self.buffers[r.buffer.0] = buffer;
        }
    }
}

/// Checks every operand of `op` lies inside its buffer and no written buffer is shared with another operand.
pub(crate) fn check_op(op: &Op, buffer_len: impl Fn(BufferId) -> Option<usize>) -> Result<()> {
    let operands = op.kernel().operands();
    for operand in &operands {
        let region = operand.region;
        if region.len < operand.needed {
            return Err(Error::shape(
                format!("{} operand", op.name()),
                format!("{} floats", operand.needed),
                format!("a region of {}", region.len),
            ));
        }
        let len = buffer_len(region.buffer)
            .ok_or_else(|| Error::value("buffer", format!("{:?} does not exist", region.buffer)))?;
        if region.offset + region.len > len {
            return Err(Error::shape(
                format!("{} operand", op.name()),
                format!("a region inside {len} floats"),
                format!("{}..{}", region.offset, region.offset + region.len),
            ));
        }
    }
    // A written buffer may not appear in any other operand: wgpu rejects a buffer bound both read-only and
    // read-write in one dispatch, and the CPU backend moves written buffers out while it reads the rest.
    for (i, a) in operands.iter().enumerate() {
        let shared = operands
            .iter()
            .enumerate()
            .any(|(j, b)| i != j && a.region.buffer == b.region.buffer);
        if a.written && shared {
            return Err(Error::value(
                format!("{} operands", op.name()),
                "a written buffer is also used by another operand",
            ));
        }
    }
    Ok(())
}
