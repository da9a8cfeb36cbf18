//! Batch normalisation (PyTorch's `nn.BatchNorm1d` on rows of features, `nn.BatchNorm2d` on NCHW images,
//! with their defaults: momentum 0.1, eps 1e-5, affine, running statistics tracked). While training, each
//! channel is normalised with the batch's mean and biased variance, and the running mean and unbiased
//! variance move toward them; in evaluation the running statistics normalise. `weight` (γ) starts at 1,
//! `bias` (β) at 0.

use super::{Init, Layer, LayerKind, LayerStep, Mode, ParamSpec, Shape};
use crate::network::PARAM_ALIGN;
use crate::ops::{
    BatchNormApply, BatchNormBackward, BatchNormBackwardSums, BatchNormRunning, BatchNormStats,
    NormShape, Op, Region,
};

/// PyTorch's defaults.
pub const MOMENTUM: f32 = 0.1;
/// Added to the variance before its square root, for numerical stability (PyTorch's `eps`).
pub const EPS: f32 = 1e-5;

/// `batchnorm`: over the features of rows, or the channels of images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNorm;

/// (channels, values per channel per sample).
fn channels(input: Shape) -> (usize, usize) {
    match input {
        Shape::Flat(features) => (features, 1),
        // Refused by `output_shape`; kept total for the match.
        Shape::Sequence { features, .. } => (features, 1),
        Shape::Image {
            channels,
            height,
            width,
        } => (channels, height * width),
    }
}

/// Where the second of two per-channel vectors starts in every region this layer binds: parameters,
/// running statistics and the saved batch statistics are all laid out aligned, one vector after another.
fn second(channels: usize) -> usize {
    channels.next_multiple_of(PARAM_ALIGN)
}

/// A region from the start of `first` to the end of `last` (both in one buffer, `first` before `last`).
fn spanning(first: Region, last: Region) -> Region {
    Region {
        len: last.offset + last.len - first.offset,
        ..first
    }
}

impl LayerKind for BatchNorm {
    fn token(&self) -> String {
        "batchnorm".into()
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        match input {
            Shape::Sequence { .. } => Err(format!(
                "rows or images (batch norm over a sequence is not supported yet), got {input}"
            )),
            _ => Ok(input),
        }
    }

    fn params(&self, input: Shape, _next: Option<&Layer>) -> Vec<ParamSpec> {
        let (c, _) = channels(input);
        let vector = |name, init| ParamSpec {
            name,
            torch_shape: vec![c],
            transposed: false,
            init,
            nonnegative: false,
        };
        vec![vector("weight", Init::Ones), vector("bias", Init::Zeros)]
    }

    /// `running_mean`, `running_var` and `num_batches_tracked` (a scalar, PyTorch's int64).
    fn state(&self, input: Shape) -> Vec<ParamSpec> {
        let (c, _) = channels(input);
        let tensor = |name, torch_shape, init, nonnegative| ParamSpec {
            name,
            torch_shape,
            transposed: false,
            init,
            nonnegative,
        };
        vec![
            tensor("running_mean", vec![c], Init::Zeros, false),
            tensor("running_var", vec![c], Init::Ones, true),
            tensor("num_batches_tracked", vec![], Init::Zeros, true),
        ]
    }

    fn check_batch(&self, input: Shape, rows: usize) -> Result<(), String> {
        let (_, spatial) = channels(input);
        if rows * spatial < 2 {
            return Err(format!(
                "batch norm needs more than one value per channel in a training batch, got {rows} of {input} (use a batch of 2 or more; PyTorch refuses this too)"
            ));
        }
        Ok(())
    }

    /// The batch's mean and variance.
    fn saved(&self, input: Shape) -> usize {
        let (c, _) = channels(input);
        second(c) + c
    }

    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let (c, spatial) = channels(step.input_shape);
        let shape = NormShape {
            batch: step.rows,
            channels: c,
            spatial,
            second: second(c),
        };
        let batch = (
            Region {
                len: c,
                ..step.saved
            },
            Region {
                offset: step.saved.offset + second(c),
                len: c,
                ..step.saved
            },
        );
        let (mean, variance) = match step.mode {
            Mode::Train => {
                ops.push(Op::BatchNormStats(BatchNormStats {
                    input: step.input,
                    stats: step.saved,
                    shape,
                }));
                ops.push(Op::BatchNormRunning(BatchNormRunning {
                    mean: batch.0,
                    variance: batch.1,
                    running: spanning(step.state[0], step.state[2]),
                    tracked: step.state[2].offset - step.state[0].offset,
                    shape,
                    momentum: MOMENTUM,
                }));
                batch
            }
            Mode::Eval => (step.state[0], step.state[1]),
        };
        ops.push(Op::BatchNormApply(BatchNormApply {
            input: step.input,
            output: step.output,
            mean,
            variance,
            gamma: step.params[0],
            beta: step.params[1],
            shape,
            eps: EPS,
        }));
    }

    /// γ's and β's gradients are the two per-channel sums; the input's gradient follows from them.
    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let (c, spatial) = channels(step.input_shape);
        let shape = NormShape {
            batch: step.rows,
            channels: c,
            spatial,
            second: second(c),
        };
        let mean = Region {
            len: c,
            ..step.saved
        };
        let variance = Region {
            offset: step.saved.offset + second(c),
            len: c,
            ..step.saved
        };
        let grads = spanning(step.param_grads[0], step.param_grads[1]);
        ops.push(Op::BatchNormBackwardSums(BatchNormBackwardSums {
            input: step.input,
            grad_output: step.grad_output,
            mean,
            variance,
            grads,
            shape,
            eps: EPS,
        }));
        if let Some(grad_input) = step.grad_input {
            ops.push(Op::BatchNormBackward(BatchNormBackward {
                input: step.input,
                grad_output: step.grad_output,
                grad_input,
                mean,
                variance,
                gamma: step.params[0],
                sums: grads,
                shape,
                eps: EPS,
            }));
        }
    }
}

/// `batchnorm`.
pub(super) fn parse(_name: &str, args: &[&str]) -> Result<Layer, String> {
    match args {
        [] => Ok(Layer::BatchNorm(BatchNorm)),
        _ => {
            Err("batchnorm takes no parameters (PyTorch's defaults: momentum 0.1, eps 1e-5)".into())
        }
    }
}
