//! Batch normalisation (`shaders/norm.wgsl`) over values laid out `[batch, channels, spatial]`: PyTorch's
//! `BatchNorm1d` on rows (spatial 1) and `BatchNorm2d` on NCHW images, with its conventions (biased variance
//! to normalise, unbiased into the running variance). Each channel's sums run in one workgroup in a fixed
//! order; the CPU sums in f64.

use super::launch::{flat_groups, Dims, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};

pub const SHADER: Shader = Shader {
    stem: "norm",
    source: include_str!("../../shaders/norm.wgsl"),
};

/// The shape the statistics run over, and where the second half of a two-part region starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormShape {
    pub batch: usize,
    pub channels: usize,
    /// Values per channel per sample: height · width, or 1.
    pub spatial: usize,
    /// Offset of the second part (variance, β's gradient, running variance) in a two-part region.
    pub second: usize,
}

impl NormShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// Values per channel: batch · spatial.
    pub fn count(&self) -> usize {
        self.batch * self.spatial
    }

    fn dims(&self, eps: f32) -> Dims {
        Dims {
            batch: self.batch as u32,
            channels: self.channels as u32,
            width: self.spatial as u32,
            scale: eps,
            window_offset: self.second as u32,
            ..Dims::default()
        }
    }

    /// The flat index of value `j` (of batch · spatial) of channel `c`.
    fn at(&self, c: usize, j: usize) -> usize {
        ((j / self.spatial) * self.channels + c) * self.spatial + j % self.spatial
    }

    fn channel(&self, i: usize) -> usize {
        (i / self.spatial) % self.channels
    }
}

macro_rules! name {
    ($op:ident, $name:literal) => {
        impl $op {
            /// The CPU function and the WGSL entry point.
            pub const NAME: &'static str = $name;
        }
    };
}

/// `stats[c]` = the mean of channel `c`, `stats[second + c]` its biased variance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormStats {
    pub input: Region,
    pub stats: Region,
    pub shape: NormShape,
}
name!(BatchNormStats, "batch_norm_stats");

/// `output = gamma · (input − mean) / √(variance + eps) + beta`, per channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormApply {
    pub input: Region,
    pub output: Region,
    pub mean: Region,
    pub variance: Region,
    pub gamma: Region,
    pub beta: Region,
    pub shape: NormShape,
    pub eps: f32,
}
name!(BatchNormApply, "batch_norm_apply");

/// The running statistics in `running` (mean, variance at `second`, the batch count at `tracked`) move
/// toward the batch's by `momentum`, the variance unbiased by `M / (M − 1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormRunning {
    pub mean: Region,
    pub variance: Region,
    pub running: Region,
    pub tracked: usize,
    pub shape: NormShape,
    pub momentum: f32,
}
name!(BatchNormRunning, "batch_norm_running");

/// `grads[c] = Σ g·x̂` (γ's gradient) and `grads[second + c] = Σ g` (β's) over channel `c`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormBackwardSums {
    pub input: Region,
    pub grad_output: Region,
    pub mean: Region,
    pub variance: Region,
    pub grads: Region,
    pub shape: NormShape,
    pub eps: f32,
}
name!(BatchNormBackwardSums, "batch_norm_backward_sums");

/// `grad_input = gamma · inv_std · (g − Σg/M − x̂ · Σ(g·x̂)/M)`, the sums from [`BatchNormBackwardSums`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormBackward {
    pub input: Region,
    pub grad_output: Region,
    pub grad_input: Region,
    pub mean: Region,
    pub variance: Region,
    pub gamma: Region,
    pub sums: Region,
    pub shape: NormShape,
    pub eps: f32,
}
name!(BatchNormBackward, "batch_norm_backward");

/// One workgroup per channel.
fn per_channel(channels: usize) -> [usize; 3] {
    [channels.max(1), 1, 1]
}

impl Kernel for BatchNormStats {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn shader(&self) -> &'static Shader {
        &SHADER
    }
    fn operands(&self) -> Vec<Operand> {
        let s = self.shape;
        vec![
            reads(self.input, s.len()),
            writes(self.stats, s.second + s.channels),
        ]
    }
    fn run_cpu(&self, host: &mut HostBuffers) {
        let s = self.shape;
        host.write([(self.stats, s.second + s.channels)], |host, [stats]| {
            batch_norm_stats(host.read(self.input, s.len()), stats, &s)
        });
    }
    fn launch(&self) -> Launch {
        Launch {
            dims: self.shape.dims(0.0),
            bindings: vec![(1, self.input), (8, self.stats)],
            groups: per_channel(self.shape.channels),
        }
    }
}

impl Kernel for BatchNormApply {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn shader(&self) -> &'static Shader {
        &SHADER
    }
    fn operands(&self) -> Vec<Operand> {
        let s = self.shape;
        vec![
            reads(self.input, s.len()),
            writes(self.output, s.len()),
            reads(self.mean, s.channels),
            reads(self.variance, s.channels),
            reads(self.gamma, s.channels),
            reads(self.beta, s.channels),
        ]
    }
    fn run_cpu(&self, host: &mut HostBuffers) {
        let s = self.shape;
        host.write([(self.output, s.len())], |host, [output]| {
            let c = s.channels;
            batch_norm_apply(
                host.read(self.input, s.len()),
                output,
                [
                    host.read(self.mean, c),
                    host.read(self.variance, c),
                    host.read(self.gamma, c),
                    host.read(self.beta, c),
                ],
                &s,
                self.eps,
            )
        });
    }
    fn launch(&self) -> Launch {
        Launch {
            dims: self.shape.dims(self.eps),
            bindings: vec![
                (1, self.input),
                (2, self.output),
                (4, self.mean),
                (5, self.variance),
                (6, self.gamma),
                (7, self.beta),
            ],
            groups: flat_groups(self.shape.len()),
        }
    }
}

impl Kernel for BatchNormRunning {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn shader(&self) -> &'static Shader {
        &SHADER
    }
    fn operands(&self) -> Vec<Operand> {
        let s = self.shape;
        vec![
            reads(self.mean, s.channels),
            reads(self.variance, s.channels),
            writes(self.running, self.tracked + 1),
        ]
    }
    fn run_cpu(&self, host: &mut HostBuffers) {
        let s = self.shape;
        host.write([(self.running, self.tracked + 1)], |host, [running]| {
            batch_norm_running(
                host.read(self.mean, s.channels),
                host.read(self.variance, s.channels),
                running,
                (self.tracked, self.momentum),
                &s,
            )
        });
    }
    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                slope: self.momentum,
                stride: self.tracked as u32,
                ..self.shape.dims(0.0)
            },
            bindings: vec![(4, self.mean), (5, self.variance), (8, self.running)],
            groups: flat_groups(self.shape.channels),
        }
    }
}

impl Kernel for BatchNormBackwardSums {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn shader(&self) -> &'static Shader {
        &SHADER
    }
    fn operands(&self) -> Vec<Operand> {
        let s = self.shape;
        vec![
            reads(self.input, s.len()),
            reads(self.grad_output, s.len()),
            reads(self.mean, s.channels),
            reads(self.variance, s.channels),
            writes(self.grads, s.second + s.channels),
        ]
    }
    fn run_cpu(&self, host: &mut HostBuffers) {
        let s = self.shape;
        host.write([(self.grads, s.second + s.channels)], |host, [grads]| {
            batch_norm_backward_sums(
                [
                    host.read(self.input, s.len()),
                    host.read(self.grad_output, s.len()),
                ],
                [
                    host.read(self.mean, s.channels),
                    host.read(self.variance, s.channels),
                ],
                grads,
                &s,
                self.eps,
            )
        });
    }
    fn launch(&self) -> Launch {
        Launch {
            dims: self.shape.dims(self.eps),
            bindings: vec![
                (1, self.input),
                (3, self.grad_output),
                (4, self.mean),
                (5, self.variance),
                (8, self.grads),
            ],
            groups: per_channel(self.shape.channels),
        }
    }
}

impl Kernel for BatchNormBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn shader(&self) -> &'static Shader {
        &SHADER
    }
    fn operands(&self) -> Vec<Operand> {
        let s = self.shape;
        vec![
            reads(self.input, s.len()),
            reads(self.grad_output, s.len()),
            writes(self.grad_input, s.len()),
            reads(self.mean, s.channels),
            reads(self.variance, s.channels),
            reads(self.gamma, s.channels),
            reads(self.sums, s.second + s.channels),
        ]
    }
    fn run_cpu(&self, host: &mut HostBuffers) {
        let s = self.shape;
        host.write([(self.grad_input, s.len())], |host, [grad_input]| {
            let c = s.channels;
            batch_norm_backward(
                [
                    host.read(self.input, s.len()),
                    host.read(self.grad_output, s.len()),
                ],
                grad_input,
                [
                    host.read(self.mean, c),
                    host.read(self.variance, c),
                    host.read(self.gamma, c),
                ],
                host.read(self.sums, s.second + c),
                &s,
                self.eps,
            )
        });
    }
    fn launch(&self) -> Launch {
        Launch {
            dims: self.shape.dims(self.eps),
            bindings: vec![
                (1, self.input),
                (2, self.grad_input),
                (3, self.grad_output),
                (4, self.mean),
                (5, self.variance),
                (6, self.gamma),
                (7, self.sums),
            ],
            groups: flat_groups(self.shape.len()),
        }
    }
}

/// Each channel's mean and biased variance (two passes, summed in f64).
pub fn batch_norm_stats(input: &[f32], stats: &mut [f32], s: &NormShape) {
    let count = s.count() as f64;
    for c in 0..s.channels {
        let mean = (0..s.count())
            .map(|j| f64::from(input[s.at(c, j)]))
            .sum::<f64>()
            / count;
        let var = (0..s.count())
            .map(|j| (f64::from(input[s.at(c, j)]) - mean).powi(2))
            .sum::<f64>()
            / count;
        stats[c] = mean as f32;
        stats[s.second + c] = var as f32;
    }
}

/// `gamma · (x − mean) / √(variance + eps) + beta`, per channel.
pub fn batch_norm_apply(
    input: &[f32],
    output: &mut [f32],
    [mean, variance, gamma, beta]: [&[f32]; 4],
    s: &NormShape,
    eps: f32,
) {
    for (i, (y, &x)) in output.iter_mut().zip(input).enumerate() {
        let c = s.channel(i);
        *y = gamma[c] * (x - mean[c]) / (variance[c] + eps).sqrt() + beta[c];
    }
}

/// PyTorch's running statistics: `(1 − m) · running + m · batch`, the variance unbiased; one more batch.
pub fn batch_norm_running(
    mean: &[f32],
    variance: &[f32],
    running: &mut [f32],
    (tracked, momentum): (usize, f32),
    s: &NormShape,
) {
    let count = s.count() as f32;
    for c in 0..s.channels {
        let unbiased = variance[c] * count / (count - 1.0).max(1.0);
        running[c] = (1.0 - momentum) * running[c] + momentum * mean[c];
        running[s.second + c] = (1.0 - momentum) * running[s.second + c] + momentum * unbiased;
    }
    running[tracked] += 1.0;
}

/// `Σ g·x̂` and `Σ g` per channel (f64).
pub fn batch_norm_backward_sums(
    [input, grad_output]: [&[f32]; 2],
    [mean, variance]: [&[f32]; 2],
    grads: &mut [f32],
    s: &NormShape,
    eps: f32,
) {
    for c in 0..s.channels {
        let inv_std = 1.0 / (variance[c] + eps).sqrt();
        let (mut g, mut gx) = (0.0f64, 0.0f64);
        for j in 0..s.count() {
            let i = s.at(c, j);
            g += f64::from(grad_output[i]);
            gx += f64::from(grad_output[i] * (input[i] - mean[c]) * inv_std);
        }
        grads[c] = gx as f32;
        grads[s.second + c] = g as f32;
    }
}

/// `gamma · inv_std · (g − Σg/M − x̂ · Σ(g·x̂)/M)`.
pub fn batch_norm_backward(
    [input, grad_output]: [&[f32]; 2],
    grad_input: &mut [f32],
    [mean, variance, gamma]: [&[f32]; 3],
    sums: &[f32],
    s: &NormShape,
    eps: f32,
) {
    let count = s.count() as f32;
    for (i, d) in grad_input.iter_mut().enumerate() {
        let c = s.channel(i);
        let inv_std = 1.0 / (variance[c] + eps).sqrt();
        let x_hat = (input[i] - mean[c]) * inv_std;
        let (sum_gx, sum_g) = (sums[c], sums[s.second + c]);
        *d = gamma[c] * inv_std * (grad_output[i] - sum_g / count - x_hat * sum_gx / count);
    }
}
