//! The one seam between the backend-free model and a device. A backend owns buffers of f32, turns an [`Op`]
//! into a prepared kernel once, and runs prepared kernels in the order they are enqueued.
//!
//! Every op has a CPU function in `src/cpu/` and a WGSL entry point in `shaders/` with the same name
//! ([`Op::name`]), and a parity test under that name in `tests/gpu_vs_cpu*.rs`.

use crate::activation::Activation;
use crate::error::Result;
use crate::loss::Loss;
use crate::optim::hyper::LEN as HYPER_LEN;

/// A backend buffer of f32 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferId(pub(crate) usize);

/// A kernel prepared by [`Backend::prepare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelId(pub(crate) usize);

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

/// One step of a training or inference graph. Matrices are row-major f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `output[m, n] = activation(input[m, k] · weights[k, n] + bias[n])` (elementwise activations only).
    MatmulBiasAct {
        input: Region,
        weights: Region,
        bias: Region,
        output: Region,
        m: usize,
        k: usize,
        n: usize,
        activation: Activation,
    },
    /// `grad_input[m, n] = grad_output[m, k] · weights[n, k]ᵀ` — backprop to a layer's input.
    MatmulNt {
        grad_output: Region,
        weights: Region,
        grad_input: Region,
        m: usize,
        k: usize,
        n: usize,
    },
    /// `grad_weights[m, n] = input[k, m]ᵀ · grad_output[k, n]` — a layer's weight gradient over the batch.
    MatmulTn {
        input: Region,
        grad_output: Region,
        grad_weights: Region,
        m: usize,
        k: usize,
        n: usize,
    },
    /// Row-wise softmax of `values[rows, cols]` in place.
    Softmax {
        values: Region,
        rows: usize,
        cols: usize,
    },
    /// `grad ← grad ⊙ f'(output)` in place (for softmax the Jacobian-vector product per row).
    ActBackward {
        output: Region,
        grad: Region,
        rows: usize,
        cols: usize,
        activation: Activation,
    },
    /// Per-row loss into `row_loss[rows]`, per-row correct predictions into `row_hits[rows]`, and the gradient
    /// into `grad[rows, cols]` (see [`Loss`]).
    LossGrad {
        prediction: Region,
        target: Region,
        grad: Region,
        row_loss: Region,
        row_hits: Region,
        rows: usize,
        cols: usize,
        loss: Loss,
    },
    /// `stats[0] = scale · Σ row_loss` (the step's loss); running sums over an epoch: `stats[1] += Σ row_loss`,
    /// `stats[2] += Σ row_hits`, `stats[3] += 1` (steps); and `stats[4]`, when still 0, becomes the step
    /// count of the first step whose loss is not finite. Summed in a fixed order. See [`STATS_LEN`].
    LossSum {
        row_loss: Region,
        row_hits: Region,
        stats: Region,
        rows: usize,
        scale: f32,
    },
    /// `grad_bias[j] = Σ_i grad_output[i, j]`, summed over rows in order.
    BiasGrad {
        grad_output: Region,
        grad_bias: Region,
        rows: usize,
        cols: usize,
    },
    /// Counts a step in `hyper` and refreshes Adam's bias corrections (see [`crate::optim::hyper`]).
    AdvanceStep { hyper: Region },
    /// Plain gradient descent with optional weight decay (see [`crate::optim::Optimizer::Sgd`]).
    SgdUpdate {
        params: Region,
        grads: Region,
        hyper: Region,
    },
    /// Heavy-ball momentum (see [`crate::optim::Optimizer::Momentum`]).
    MomentumUpdate {
        params: Region,
        grads: Region,
        velocity: Region,
        hyper: Region,
    },
    /// Adam (see [`crate::optim::Optimizer::Adam`]).
    AdamUpdate {
        params: Region,
        grads: Region,
        first_moment: Region,
        second_moment: Region,
        hyper: Region,
    },
    /// `output[r, :] = source[order[cursor + r], :]` for `r < rows`: a mini-batch gathered from a training
    /// set held on the device. `order` and `cursor` hold `u32` row indices as bit patterns
    /// ([`f32::from_bits`]), so every buffer stays `f32` on the host. Positions past `order` and rows past
    /// `source` give zeros.
    GatherRows {
        source: Region,
        order: Region,
        cursor: Region,
        output: Region,
        rows: usize,
        cols: usize,
    },
    /// `cursor += rows` (a `u32` bit pattern): the next gather starts after this batch.
    AdvanceCursor { cursor: Region, rows: usize },
}

impl Op {
    /// The shared name of the CPU function and the WGSL entry point.
    pub fn name(&self) -> &'static str {
        match self {
            Op::MatmulBiasAct { .. } => "matmul_bias_act",
            Op::MatmulNt { .. } => "matmul_nt",
            Op::MatmulTn { .. } => "matmul_tn",
            Op::Softmax { .. } => "softmax",
            Op::ActBackward { activation, .. } if *activation == Activation::Softmax => {
                "softmax_backward"
            }
            Op::ActBackward { .. } => "act_backward",
            Op::LossGrad { .. } => "loss_grad",
            Op::LossSum { .. } => "loss_sum",
            Op::BiasGrad { .. } => "bias_grad",
            Op::AdvanceStep { .. } => "advance_step",
            Op::SgdUpdate { .. } => "sgd_update",
            Op::MomentumUpdate { .. } => "momentum_update",
            Op::AdamUpdate { .. } => "adam_update",
            Op::GatherRows { .. } => "gather_rows",
            Op::AdvanceCursor { .. } => "advance_cursor",
        }
    }

    /// `(region, its required length, written?)` for every operand, for bounds and aliasing checks.
    pub(crate) fn operands(&self) -> Vec<(Region, usize, bool)> {
        match *self {
            Op::MatmulBiasAct {
                input,
                weights,
                bias,
                output,
                m,
                k,
                n,
                ..
            } => vec![
                (input, m * k, false),
                (weights, k * n, false),
                (bias, n, false),
                (output, m * n, true),
            ],
            Op::MatmulNt {
                grad_output,
                weights,
                grad_input,
                m,
                k,
                n,
            } => vec![
                (grad_output, m * k, false),
                (weights, n * k, false),
                (grad_input, m * n, true),
            ],
            Op::MatmulTn {
                input,
                grad_output,
                grad_weights,
                m,
                k,
                n,
            } => vec![
                (input, k * m, false),
                (grad_output, k * n, false),
                (grad_weights, m * n, true),
            ],
            Op::Softmax { values, rows, cols } => vec![(values, rows * cols, true)],
            Op::ActBackward {
                output,
                grad,
                rows,
                cols,
                ..
            } => vec![(output, rows * cols, false), (grad, rows * cols, true)],
            Op::LossGrad {
                prediction,
                target,
                grad,
                row_loss,
                row_hits,
                rows,
                cols,
                loss,
            } => vec![
                (prediction, rows * cols, false),
                (target, rows * loss.target_width(cols), false),
                (grad, rows * cols, true),
                (row_loss, rows, true),
                (row_hits, rows, true),
            ],
            Op::LossSum {
                row_loss,
                row_hits,
                stats,
                rows,
                ..
            } => vec![
                (row_loss, rows, false),
                (row_hits, rows, false),
                (stats, STATS_LEN, true),
            ],
            Op::BiasGrad {
                grad_output,
                grad_bias,
                rows,
                cols,
            } => vec![(grad_output, rows * cols, false), (grad_bias, cols, true)],
            Op::AdvanceStep { hyper } => vec![(hyper, HYPER_LEN, true)],
            Op::SgdUpdate {
                params,
                grads,
                hyper,
            } => vec![
                (params, params.len, true),
                (grads, params.len, false),
                (hyper, HYPER_LEN, false),
            ],
            Op::MomentumUpdate {
                params,
                grads,
                velocity,
                hyper,
            } => vec![
                (params, params.len, true),
                (grads, params.len, false),
                (velocity, params.len, true),
                (hyper, HYPER_LEN, false),
            ],
            Op::AdamUpdate {
                params,
                grads,
                first_moment,
                second_moment,
                hyper,
            } => vec![
                (params, params.len, true),
                (grads, params.len, false),
                (first_moment, params.len, true),
                (second_moment, params.len, true),
                (hyper, HYPER_LEN, false),
            ],
            Op::GatherRows {
                source,
                order,
                cursor,
                output,
                rows,
                cols,
            } => vec![
                (source, cols, false),
                (order, 1, false),
                (cursor, 1, false),
                (output, rows * cols, true),
            ],
            Op::AdvanceCursor { cursor, .. } => vec![(cursor, 1, true)],
        }
    }
}

pub use crate::loss::REDUCTION_WINDOW;

/// Floats in the `stats` operand of [`Op::LossSum`].
pub const STATS_LEN: usize = 5;

/// What the engine counted, for tests and benchmarks: a training step must add one submit and nothing else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Command submissions to the device queue (the CPU backend counts calls to `submit`).
    pub submits: u64,
    /// Blocking reads of device memory back to the host.
    pub readbacks: u64,
    /// Buffers, bind groups and pipelines created.
    pub allocations: u64,
    /// Bytes of device memory held by live buffers (for the CPU backend, host memory in its buffers).
    pub live_bytes: u64,
}

/// Which backend and adapter a model runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `cpu` or `wgpu`.
    pub backend: String,
    /// Adapter name (`llvmpipe (LLVM 15.0.6, 256 bits)`, ...) or the CPU backend's description.
    pub adapter: String,
    /// Driver name and version as the adapter reports them.
    pub driver: String,
    /// wgpu backend (`vulkan`, `metal`, `dx12`, `gl`) or `-`.
    pub api: String,
    /// Adapter type (`discrete`, `integrated`, `cpu`, ...) or `host`.
    pub device_type: String,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backend={} adapter=\"{}\" driver=\"{}\" api={} type={}",
            self.backend, self.adapter, self.driver, self.api, self.device_type
        )
    }
}

/// A device that stores buffers and runs [`Op`]s. The only CPU/GPU seam.
pub trait Backend {
    /// The backend and adapter in use.
    fn info(&self) -> &DeviceInfo;
    /// Allocates a zero-filled buffer of `len` floats.
    fn alloc(&mut self, label: &str, len: usize) -> Result<BufferId>;
    /// Releases a buffer's memory; kernels prepared on it must not be enqueued again.
    fn free(&mut self, buffer: BufferId) -> Result<()>;
    /// Copies `data` into `buffer` at float `offset`, ordered after every kernel enqueued before it.
    fn write(&mut self, buffer: BufferId, offset: usize, data: &[f32]) -> Result<()>;
    /// Runs what is enqueued, then reads `region` back to the host.
    fn read(&mut self, region: Region) -> Result<Vec<f32>>;
    /// Checks `op` and builds what running it needs (pipeline state, bindings, shape uniforms), once.
    fn prepare(&mut self, op: &Op) -> Result<KernelId>;
    /// Appends a prepared kernel to the pending work.
    fn enqueue(&mut self, kernel: KernelId) -> Result<()>;
    /// Sends the pending work to the device as one submission.
    fn submit(&mut self) -> Result<()>;
    /// What the backend counted so far.
    fn counters(&self) -> Counters;
    /// Runs `kernels` once, in order, timing each: `(op name, microseconds)`. `None` where the device cannot
    /// time its work (a GPU adapter without timestamp queries). Outside measured runs: it may allocate.
    fn profile(&mut self, kernels: &[KernelId]) -> Result<Option<Vec<(&'static str, f64)>>>;

    /// The largest buffer and the free memory, checked before a model allocates (see [`crate::memory`]).
    fn memory_limits(&self) -> crate::memory::MemoryLimits;

    /// The most floats one operand may span when bound whole (a GPU's storage binding limit).
    fn max_binding_len(&self) -> usize {
        usize::MAX
    }
}

/// Checks every operand of `op` lies inside its buffer and no written buffer is shared with another operand.
pub(crate) fn check_op(op: &Op, buffer_len: impl Fn(BufferId) -> Option<usize>) -> Result<()> {
    use crate::error::Error;
    let operands = op.operands();
    for &(region, needed, _) in &operands {
        if region.len < needed {
            return Err(Error::shape(
                format!("{} operand", op.name()),
                format!("{needed} floats"),
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
    for (i, &(a, _, written)) in operands.iter().enumerate() {
        let shared = operands
            .iter()
            .enumerate()
            .any(|(j, &(b, _, _))| i != j && a.buffer == b.buffer);
        if written && shared {
            return Err(Error::value(
                format!("{} operands", op.name()),
                "a written buffer is also used by another operand",
            ));
        }
    }
    Ok(())
}
