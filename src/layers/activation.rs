//! An activation as a layer of its own (PyTorch's `nn.ReLU`, `nn.Softmax(dim=1)`, ...). It works in place.
//! After a layer that accepts an epilogue (dense, conv) the forward pass is that layer's; elsewhere it runs
//! as its own op; with a loss that takes logits (cross-entropy, binary cross-entropy) the output activation is the
//! loss's. The backward pass multiplies the gradient by the derivative, computed from the output.

use super::{Fusion, Layer, LayerKind, LayerStep, Shape};
use crate::activation::Activation;
use crate::ops::{ActBackward, ActForward, Op, Softmax, SoftmaxBackward};

impl LayerKind for Activation {
    fn token(&self) -> String {
        match self {
            Activation::LeakyRelu(slope) => format!("leaky_relu:{slope}"),
            _ => self.name().to_string(),
        }
    }

    fn check(&self) -> Result<(), String> {
        match *self {
            Activation::LeakyRelu(slope) if !(slope.is_finite() && slope >= 0.0) => Err(format!(
                "the leaky_relu slope must be finite and >= 0, got {slope}"
            )),
            _ => Ok(()),
        }
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        match (self, input) {
            (Activation::Softmax, Shape::Image { .. } | Shape::Sequence { .. }) => Err(format!(
                "a flat input for softmax over classes, got {input}"
            )),
            _ => Ok(input),
        }
    }

    fn in_place(&self) -> bool {
        true
    }

    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        if step.fusion != Fusion::Own {
            return;
        }
        let (rows, cols) = (step.rows, step.output_shape.size());
        match *self {
            Activation::Linear => {}
            Activation::Softmax => ops.push(Op::Softmax(Softmax {
                values: step.output,
                rows,
                cols,
            })),
            activation => ops.push(Op::ActForward(ActForward {
                values: step.output,
                rows,
                cols,
                activation,
            })),
        }
    }

    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        if step.fusion == Fusion::IntoLoss || *self == Activation::Linear {
            return;
        }
        let (rows, cols) = (step.rows, step.output_shape.size());
        let (output, grad) = (step.output, step.grad_output);
        ops.push(if *self == Activation::Softmax {
            Op::SoftmaxBackward(SoftmaxBackward {
                output,
                grad,
                rows,
                cols,
            })
        } else {
            Op::ActBackward(ActBackward {
                output,
                grad,
                rows,
                cols,
                activation: *self,
            })
        });
    }
}

/// The activation layers' names.
pub(super) const NAMES: &[&str] = &["linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"];

/// An activation by name; `leaky_relu:SLOPE` gives the negative side's slope (0.01 without one, as PyTorch).
pub(super) fn parse(name: &str, args: &[&str]) -> Result<Layer, String> {
    let activation: Activation = name.parse().map_err(|e: crate::Error| e.to_string())?;
    match (activation, args) {
        (_, []) => Ok(Layer::Activation(activation)),
        (Activation::LeakyRelu(_), [slope]) => match slope.parse::<f32>() {
            Ok(slope) => Ok(Layer::Activation(Activation::LeakyRelu(slope))),
            Err(_) => Err(format!(
                "expected leaky_relu:SLOPE with SLOPE a number, got {}",
                crate::error::quote(slope)
            )),
        },
        _ => Err(format!("{name} takes no parameters")),
    }
}
