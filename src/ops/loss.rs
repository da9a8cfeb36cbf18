//! The loss of a batch (`shaders/loss.wgsl`): per-row values, hits and gradients, then their sums.

use super::launch::{
    flat_groups, sum_windows, whole, Dims, Launch, FLAG_WEIGHTED, REDUCTION_WINDOW,
};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::loss::Loss;

pub const SHADER: Shader = Shader {
    stem: "loss",
    source: include_str!("../../shaders/loss.wgsl"),
};

/// Floats in the `stats` operand of [`LossSum`]: the five it keeps, then the step's and the epoch's sums
/// of class weights that [`ClassWeightSum`] keeps.
pub const STATS_LEN: usize = 7;
/// Where [`ClassWeightSum`] leaves the step's weight sum (the weighted mean's divisor).
pub const WEIGHT_SUM: usize = 5;
/// Where [`ClassWeightSum`] accumulates the epoch's weight sums.
pub const EPOCH_WEIGHT_SUM: usize = 6;

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
/// `weighted`: the scale is `1 / stats[WEIGHT_SUM]` instead (after [`ClassWeightSum`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossSum {
    pub row_loss: Region,
    pub row_hits: Region,
    pub stats: Region,
    pub rows: usize,
    pub scale: f32,
    pub weighted: bool,
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
                self.weighted,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                scale: self.scale,
                flags: if self.weighted { FLAG_WEIGHTED } else { 0 },
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
pub fn loss_sum(row_loss: &[f32], row_hits: &[f32], stats: &mut [f32], scale: f32, weighted: bool) {
    let loss: f32 = row_loss.iter().sum();
    let scale = if weighted {
        1.0 / stats[WEIGHT_SUM]
    } else {
        scale
    };
    stats[0] = scale * loss;
    stats[1] += loss;
    stats[2] += row_hits.iter().sum::<f32>();
    stats[3] += 1.0;
    if stats[4] == 0.0 && !stats[0].is_finite() {
        stats[4] = stats[3];
    }
}

/// `stats[WEIGHT_SUM] = Σ_i class_weights[target_i]` over the batch's class indices, the divisor of
/// cross-entropy's weighted mean (torch's `reduction="mean"` with `weight`), and
/// `stats[EPOCH_WEIGHT_SUM] +=` it. One workgroup, a fixed order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassWeightSum {
    pub target: Region,
    pub class_weights: Region,
    pub stats: Region,
    pub rows: usize,
    pub classes: usize,
}

impl ClassWeightSum {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "class_weight_sum";
}

impl Kernel for ClassWeightSum {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.target, self.rows),
            reads(self.class_weights, self.classes),
            writes(self.stats, STATS_LEN),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.stats, STATS_LEN)], |host, [stats]| {
            class_weight_sum(
                host.read(self.target, self.rows),
                host.read(self.class_weights, self.classes),
                stats,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                n: self.classes as u32,
                ..Dims::default()
            },
            bindings: vec![(2, self.target), (7, self.class_weights), (5, self.stats)],
            groups: [1, 1, 1],
        }
    }
}

/// Softmax cross-entropy as `torch.nn.CrossEntropyLoss(weight, label_smoothing)` with the mean reduction:
/// per row `ℓ_c = logsumexp(z) − z_c`, `row_loss = (1 − ε) w_y ℓ_y + (ε / C) Σ_c w_c ℓ_c`, and the gradient
/// `(p_j ((1 − ε) w_y + (ε / C) Σ_c w_c) − (1 − ε) w_y [j = y] − (ε / C) w_j) / D`, where
/// `D = stats[WEIGHT_SUM]` is the batch's `Σ_i w_{y_i}` (the rows, for weights of one). Hits as [`LossGrad`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyGrad {
    pub prediction: Region,
    pub target: Region,
    pub class_weights: Region,
    pub stats: Region,
    pub grad: Region,
    pub row_loss: Region,
    pub row_hits: Region,
    pub rows: usize,
    pub cols: usize,
    /// ε, in [0, 1).
    pub label_smoothing: f32,
}

impl CrossEntropyGrad {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "cross_entropy_grad";
}

impl Kernel for CrossEntropyGrad {
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
            reads(self.target, rows),
            reads(self.class_weights, cols),
            reads(self.stats, STATS_LEN),
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
            cross_entropy_grad(
                host.read(self.prediction, rows * cols),
                host.read(self.target, rows),
                host.read(self.class_weights, cols),
                host.read(self.stats, STATS_LEN)[WEIGHT_SUM],
                grad,
                row_loss,
                row_hits,
                self.label_smoothing,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                n: self.cols as u32,
                stride: self.cols as u32,
                code: Loss::Ce.code(),
                scale: self.label_smoothing,
                ..Dims::default()
            },
            bindings: vec![
                (1, self.prediction),
                (2, self.target),
                (3, self.grad),
                (4, self.row_loss),
                (5, self.stats),
                (6, self.row_hits),
                (7, self.class_weights),
            ],
            groups: flat_groups(self.rows),
        }
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        Some(("cross-entropy loss", self.cols, 4))
    }
}

/// See [`ClassWeightSum`]. A class index outside the weights counts as NaN.
pub fn class_weight_sum(target: &[f32], class_weights: &[f32], stats: &mut [f32]) {
    let sum: f32 = target
        .iter()
        .map(|&t| class_weights.get(t as usize).copied().unwrap_or(f32::NAN))
        .sum();
    stats[WEIGHT_SUM] = sum;
    stats[EPOCH_WEIGHT_SUM] += sum;
}

/// See [`CrossEntropyGrad`]; `weight_sum` is `D`.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_grad(
    prediction: &[f32],
    target: &[f32],
    class_weights: &[f32],
    weight_sum: f32,
    grad: &mut [f32],
    row_loss: &mut [f32],
    row_hits: &mut [f32],
    label_smoothing: f32,
) {
    let cols = class_weights.len();
    let spread = label_smoothing / cols as f32;
    let kept = 1.0 - label_smoothing;
    let total_weight: f32 = class_weights.iter().sum();
    for (i, z) in prediction.chunks_exact(cols).enumerate() {
        let class = target[i] as usize;
        let grad = &mut grad[i * cols..(i + 1) * cols];
        row_hits[i] = Loss::Ce.row_hits(z, &target[i..i + 1]);
        let Some(&w_class) = class_weights.get(class) else {
            grad.fill(f32::NAN);
            row_loss[i] = f32::NAN;
            continue;
        };
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum_exp: f32 = z.iter().map(|&v| (v - max).exp()).sum();
        let lse = max + sum_exp.ln();
        let weighted_z: f32 = z.iter().zip(class_weights).map(|(&v, &w)| w * v).sum();
        row_loss[i] =
            kept * w_class * (lse - z[class]) + spread * (total_weight * lse - weighted_z);
        let mass = kept * w_class + spread * total_weight;
        for (j, (g, &v)) in grad.iter_mut().zip(z).enumerate() {
            let p = (v - max).exp() / sum_exp;
            let onehot = if j == class { kept * w_class } else { 0.0 };
            *g = (p * mass - onehot - spread * class_weights[j]) / weight_sum;
        }
    }
}
