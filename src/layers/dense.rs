//! A fully connected layer: `output = input · weights + bias` (PyTorch's `nn.Linear`), with an optional
//! elementwise activation applied in the same op when an activation layer follows it.

use super::{Init, Layer, LayerKind, LayerStep, ParamSpec, Shape, MAX_WIDTH};
use crate::activation::Activation;
use crate::ops::{BiasGrad, MatmulBiasAct, MatmulNt, MatmulTn, Op};

/// `units` outputs, each a weighted sum of every input plus a bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    /// Output features (`nn.Linear`'s `out_features`), at least 1.
    pub units: usize,
}

impl LayerKind for Dense {
    fn token(&self) -> String {
        format!("dense:{}", self.units)
    }

    fn check(&self) -> Result<(), String> {
        if self.units == 0 || self.units > MAX_WIDTH {
            return Err(format!(
                "a dense layer needs 1 to {MAX_WIDTH} units, got {}",
                self.units
            ));
        }
        Ok(())
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        match input {
            Shape::Flat(_) => Ok(Shape::Flat(self.units)),
            // Every position alike, as `nn.Linear` on `[N, T, d]`.
            Shape::Sequence { positions, .. } => Ok(Shape::Sequence {
                positions,
                features: self.units,
            }),
            Shape::Image { .. } => Err(format!(
                "a flat input or a sequence (add a flatten layer before it), got {input}"
            )),
        }
    }

    /// `weight` is stored `[in, units]` (so the forward pass is `input · weights`), PyTorch's `[units, in]`
    /// transposed. He-uniform `±√(6 / in)` before ReLU and leaky ReLU, Glorot-uniform
    /// `±√(6 / (in + units))` otherwise; zero bias.
    fn params(&self, input: Shape, next: Option<&Layer>) -> Vec<ParamSpec> {
        let (_, fan_in) = input.positions_and_features();
        let limit = match next.and_then(Layer::activation) {
            Some(Activation::Relu | Activation::LeakyRelu(_)) => (6.0 / fan_in as f32).sqrt(),
            _ => (6.0 / (fan_in + self.units) as f32).sqrt(),
        };
        vec![
            ParamSpec {
                name: "weight",
                torch_shape: vec![self.units, fan_in],
                transposed: true,
                init: Init::Uniform(limit),
                nonnegative: false,
            },
            ParamSpec {
                name: "bias",
                torch_shape: vec![self.units],
                transposed: false,
                init: Init::Zeros,
                nonnegative: false,
            },
        ]
    }

    fn accepts_epilogue(&self) -> bool {
        true
    }

    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let (positions, features) = step.input_shape.positions_and_features();
        ops.push(Op::MatmulBiasAct(MatmulBiasAct {
            input: step.input,
            weights: step.params[0],
            bias: step.params[1],
            output: step.output,
            m: step.rows * positions,
            k: features,
            n: self.units,
            activation: step.epilogue,
            workgroup: None,
        }));
    }

    /// Over a sequence every position is a row of its own: the weight and bias gradients sum over
    /// samples × positions, as `nn.Linear`'s do over `[N, T]`.
    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>) {
        let (positions, fan_in) = step.input_shape.positions_and_features();
        let rows = step.rows * positions;
        ops.push(Op::MatmulTn(MatmulTn {
            input: step.input,
            grad_output: step.grad_output,
            grad_weights: step.param_grads[0],
            m: fan_in,
            k: rows,
            n: self.units,
            workgroup: None,
        }));
        ops.push(Op::BiasGrad(BiasGrad {
            grad_output: step.grad_output,
            grad_bias: step.param_grads[1],
            rows,
            cols: self.units,
        }));
        if let Some(grad_input) = step.grad_input {
            ops.push(Op::MatmulNt(MatmulNt {
                grad_output: step.grad_output,
                weights: step.params[0],
                grad_input,
                m: rows,
                k: self.units,
                n: fan_in,
                workgroup: None,
            }));
        }
    }
}

/// `dense:UNITS`.
pub(super) fn parse(_name: &str, args: &[&str]) -> Result<Layer, String> {
    match args {
        [units] => units
            .parse::<usize>()
            .map(|units| Layer::Dense(Dense { units }))
            .map_err(|_| {
                format!(
                    "expected dense:UNITS with UNITS a whole number, got units {}",
                    crate::error::quote(units)
                )
            }),
        _ => Err("expected dense:UNITS (for example dense:128)".into()),
    }
}
