//! The loss of a batch (`shaders/loss.wgsl`): per-row values, hits and gradients, then their sums.

use super::launch::{flat_groups, sum_windows, whole, Dims, Launch, REDUCTION_WINDOW};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::loss::Loss;

pub const SHADER: Shader = Shader {
    stem: "loss",
    source: include_str!("../../shaders/loss.wgsl"),
};

/// Floats in the `stats` operand of [`LossSum`].
pub const STATS_LEN: usize = 5;

/// Per-row loss into `row_loss[rows]`, per-row correct predictions into `row_hits[rows]`, and the gradient
/// into `grad[rows, cols]` (see [`Loss`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossGrad {
    pub prediction: Region,
    pub target: Region,
    pub grad: Region,
    pub row_loss: Region,
    pub row_hits: Region,
    pub rows: usize,
    pub cols: usize,
    pub loss: Loss,
}

impl LossGrad {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "loss_grad";
}

impl Kernel for LossGrad {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let (rows, cols) = (self.rows, self.cols);
        vec![
            reads(self.prediction, rows * cols),
            reads(self.target, rows * self.loss.target_width(cols)),
            writes(self.grad, rows * cols),
            writes(self.row_loss, rows),
            writes(self.row_hits, rows),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (rows, cols) = (self.rows, self.cols);
        let written = [
            (self.grad, rows * cols),
            (self.row_loss, rows),
            (self.row_hits, rows),
        ];
        host.write(written, |host, [grad, row_loss, row_hits]| {
            loss_grad(
                host.read(self.prediction, rows * cols),
                host.read(self.target, rows * self.loss.target_width(cols)),
                grad,
                row_loss,
                row_hits,
                cols,
                self.loss,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                n: self.cols as u32,
                code: self.loss.code(),
                ..Dims::default()
            },
            bindings: vec![
                (1, self.prediction),
                (2, self.target),
                (3, self.grad),
                (4, self.row_loss),
                (6, self.row_hits),
            ],
            groups: flat_groups(self.rows),
        }
    }

    fn launches(&self, _max_binding: usize) -> Vec<Launch> {
        let mut base = whole(self.launch());
        base.dims.stride = self.cols as u32;
        if self.loss == Loss::Ce {
            return vec![base];
        }
        sum_windows(&base, self.cols, REDUCTION_WINDOW, |w, _, len| {
            w.dims.n = len as u32
        })
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        (self.loss == Loss::Ce).then_some(("ce loss", self.cols, 4))
    }
}

/// `stats[0] = scale · Σ row_loss` (the step's loss); running sums over an epoch: `stats[1] += Σ row_loss`,
/// `stats[2] += Σ row_hits`, `stats[3] += 1` (steps); and `stats[4]`, when still 0, becomes the step
/// count of the first step whose loss is not finite. Summed in a fixed order. See [`STATS_LEN`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossSum {
    pub row_loss: Region,
    pub row_hits: Region,
    pub stats: Region,
    pub rows: usize,
    pub scale: f32,
}

impl LossSum {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "loss_sum";
}

impl Kernel for LossSum {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.row_loss, self.rows),
            reads(self.row_hits, self.rows),
            writes(self.stats, STATS_LEN),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.stats, STATS_LEN)], |host, [stats]| {
            loss_sum(
                host.read(self.row_loss, self.rows),
                host.read(self.row_hits, self.rows),
                stats,
                self.scale,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                scale: self.scale,
                ..Dims::default()
            },
            bindings: vec![(4, self.row_loss), (6, self.row_hits), (5, self.stats)],
            groups: [1, 1, 1],
        }
    }
}

/// Per-row loss, hits and gradient for the whole batch (see [`Loss::row_loss_grad`], [`Loss::row_hits`]).
pub fn loss_grad(
    prediction: &[f32],
    target: &[f32],
    grad: &mut [f32],
    row_loss: &mut [f32],
    row_hits: &mut [f32],
    cols: usize,
    loss: Loss,
) {
    let rows = row_loss.len();
    let width = loss.target_width(cols);
    for i in 0..rows {
        let prediction = &prediction[i * cols..(i + 1) * cols];
        let target = &target[i * width..(i + 1) * width];
        row_loss[i] = loss.row_loss_grad(
            prediction,
            target,
            &mut grad[i * cols..(i + 1) * cols],
            rows,
        );
        row_hits[i] = loss.row_hits(prediction, target);
    }
}

/// `stats[0] = scale · Σ row_loss`; `stats[1] += Σ row_loss`; `stats[2] += Σ row_hits`; `stats[3] += 1`;
/// `stats[4]` records the first step with a non-finite loss. Sums in index order.
pub fn loss_sum(row_loss: &[f32], row_hits: &[f32], stats: &mut [f32], scale: f32) {
    let loss: f32 = row_loss.iter().sum();
    stats[0] = scale * loss;
    stats[1] += loss;
    stats[2] += row_hits.iter().sum::<f32>();
    stats[3] += 1.0;
    if stats[4] == 0.0 && !stats[0].is_finite() {
        stats[4] = stats[3];
    }
}
