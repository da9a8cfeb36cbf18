//! Dropout (PyTorch's `nn.Dropout(p)`): while training, each value is zeroed with probability `p` and the
//! rest scaled by `1 / (1 − p)` (inverted dropout), with a fresh mask each step; in evaluation it passes
//! values through. It keeps its own output buffer: the layer before may need its own output unchanged for
//! its backward pass (a tanh's derivative is computed from it).

use super::{Layer, LayerKind, LayerStep, Mode, Shape};
use crate::ops::{Dropout as DropoutOp, Op};

/// `dropout:P`, `0 ≤ P < 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability that a value is zeroed while training, in `[0, 1)`.
    pub p: f32,
}

impl LayerKind for Dropout {
    fn token(&self) -> String {
        format!("dropout:{}", self.p)
    }

    fn check(&self) -> Result<(), String> {
        if (0.0..1.0).contains(&self.p) {
            Ok(())
        } else {
            Err(format!(
                "the drop probability must be in [0, 1), got {}",
                self.p
            ))
        }
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        Ok(input)
    }

    fn uses_step(&self) -> bool {
        true
    }

    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        ops.push(Op::Dropout(DropoutOp::new(
            (step.input, step.output, step.hyper),
            step.input.len,
            step.seed,
            self.p,
            step.mode == Mode::Train,
        )));
    }

    /// The same mask on the gradient: the step count has not moved since the forward pass.
    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        if let Some(grad_input) = step.grad_input {
            ops.push(Op::Dropout(DropoutOp::new(
                (step.grad_output, grad_input, step.hyper),
                step.grad_output.len,
                step.seed,
                self.p,
                true,
            )));
        }
    }
}

/// `dropout:P`.
pub(super) fn parse(_name: &str, args: &[&str]) -> Result<Layer, String> {
    match args {
        [p] => match p.parse::<f32>() {
            Ok(p) => Ok(Layer::Dropout(Dropout { p })),
            Err(_) => Err(format!(
                "expected dropout:P with P a number in [0, 1), got {}",
                crate::error::quote(p)
            )),
        },
        _ => Err("expected dropout:P (for example dropout:0.3)".into()),
    }
}
