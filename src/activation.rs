//! Activation functions: the CPU forward `f` and its derivative side by side, plus the code the WGSL
//! kernels switch on, so the two implementations cannot drift apart.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Default negative-side slope of [`Activation::LeakyRelu`].
pub const DEFAULT_LEAKY_SLOPE: f32 = 0.01;

/// Inputs to `tanh` are clamped to ±this before evaluation. `tanh(9.1)` already rounds to 1.0 in f32, and the
/// clamp keeps GPU drivers that evaluate tanh through `exp(2x)` away from `inf / inf`.
pub const TANH_CLAMP: f32 = 15.0;

/// The non-linearity applied after `input · weights + bias`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// Identity.
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x > 0`, else `slope · x`. The slope must be finite and ≥ 0.
    LeakyRelu(f32),
    /// `1 / (1 + e^-x)`, evaluated without overflow for large |x|.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Row-wise `e^x_i / Σ_j e^x_j` (output layer only).
    Softmax,
}

impl Activation {
    /// The code the WGSL kernels switch on (`ACT_*` constants in `shaders/*.wgsl`).
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::Linear => 0,
            Activation::Relu => 1,
            Activation::LeakyRelu(_) => 2,
            Activation::Sigmoid => 3,
            Activation::Tanh => 4,
            Activation::Softmax => 5,
        }
    }

    /// Negative-side slope passed to the kernels (0 for everything but leaky ReLU).
    pub(crate) fn slope(self) -> f32 {
        match self {
            Activation::LeakyRelu(slope) => slope,
            _ => 0.0,
        }
    }

    /// True when `f` acts on each element alone (everything but softmax).
    pub fn is_elementwise(self) -> bool {
        self != Activation::Softmax
    }

    /// `f(x)` for an elementwise activation; softmax goes through [`softmax_rows`].
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Linear | Activation::Softmax => x,
            // ReLU and leaky ReLU test `x > 0`, the same test as the WGSL kernels.
            Activation::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu(slope) => {
                if x > 0.0 {
                    x
                } else {
                    slope * x
                }
            }
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.clamp(-TANH_CLAMP, TANH_CLAMP).tanh(),
        }
    }

    /// `values[i] = f(values[i] + bias)`: [`Activation::apply`] with the match outside the loop, so each
    /// arm's loop is vectorised.
    pub fn apply_biased(self, values: &mut [f32], bias: f32) {
        match self {
            Activation::Relu => values
                .iter_mut()
                .for_each(|v| *v = Activation::Relu.apply(*v + bias)),
            Activation::Linear | Activation::Softmax => values.iter_mut().for_each(|v| *v += bias),
            other => values.iter_mut().for_each(|v| *v = other.apply(*v + bias)),
        }
    }

    /// `f'` written in terms of the output `y = f(x)`, so the backward pass needs no stored pre-activation.
    /// At the kink of (leaky) ReLU, `y = 0`, the derivative is that of the negative side (0, or the slope).
    pub fn derivative_from_output(self, y: f32) -> f32 {
        match self {
            // d/dx x = 1
            Activation::Linear | Activation::Softmax => 1.0,
            // d/dx max(x, 0) = [x > 0], and y > 0 exactly when x > 0
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            // the slope is ≥ 0, so y > 0 exactly when x > 0
            Activation::LeakyRelu(slope) => {
                if y > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
            // σ' = σ(1 − σ)
            Activation::Sigmoid => y * (1.0 - y),
            // tanh' = 1 − tanh²
            Activation::Tanh => 1.0 - y * y,
        }
    }

    /// The name used in summaries, the CLI and `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
        }
    }

    /// Every activation, leaky ReLU with its default slope.
    pub const ALL: [Activation; 6] = [
        Activation::Linear,
        Activation::Relu,
        Activation::LeakyRelu(DEFAULT_LEAKY_SLOPE),
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softmax,
    ];
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::LeakyRelu(slope) if *slope != DEFAULT_LEAKY_SLOPE => {
                write!(f, "leaky_relu({slope})")
            }
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(Activation::Linear),
            "relu" => Ok(Activation::Relu),
            "leaky_relu" => Ok(Activation::LeakyRelu(DEFAULT_LEAKY_SLOPE)),
            "sigmoid" => Ok(Activation::Sigmoid),
            "tanh" => Ok(Activation::Tanh),
            "softmax" => Ok(Activation::Softmax),
            other => Err(Error::value(
                "activation",
                format!(
                    "{}, expected one of linear, relu, leaky_relu, sigmoid, tanh, softmax",
                    crate::error::quote(other)
                ),
            )),
        }
    }
}

/// Logistic sigmoid that never evaluates `e^x` for large positive x.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Softmax of each row of a `[rows, cols]` matrix in place, shifted by the row maximum for stability.
pub fn softmax_rows(values: &mut [f32], cols: usize) {
    for row in values.chunks_exact_mut(cols) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}
