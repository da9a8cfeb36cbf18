//! Activations outside the fused matmul epilogue (`shaders/activation.wgsl`): the softmax of an output layer
//! and the backward pass of every activation.

use super::launch::{act_dims, flat_groups, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::activation::{softmax_rows, Activation};
use crate::host::pool::{for_ranges, Disjoint};

pub const SHADER: Shader = Shader {
    stem: "activation",
    source: include_str!("../../shaders/activation.wgsl"),
};

/// `values ← f(values)` in place, for an elementwise activation no product applied in its epilogue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActForward {
    pub values: Region,
    pub rows: usize,
    pub cols: usize,
    pub activation: Activation,
}

impl ActForward {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "act_forward";
}

impl Kernel for ActForward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![writes(self.values, self.rows * self.cols)]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.values, self.rows * self.cols)], |_, [values]| {
            act_forward(values, self.activation)
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: act_dims(self.rows, self.cols, self.activation),
            bindings: vec![(3, self.values)],
            groups: flat_groups(self.rows * self.cols),
        }
    }
}

/// Row-wise softmax of `values[rows, cols]` in place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    pub values: Region,
    pub rows: usize,
    pub cols: usize,
}

impl Softmax {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "softmax";
}

impl Kernel for Softmax {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![writes(self.values, self.rows * self.cols)]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.values, self.rows * self.cols)], |_, [values]| {
            softmax(values, self.cols)
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: act_dims(self.rows, self.cols, Activation::Softmax),
            bindings: vec![(3, self.values)],
            groups: flat_groups(self.rows),
        }
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        Some(("softmax", self.cols, 3))
    }
}

/// `grad ← grad ⊙ f'(output)` in place, for an elementwise activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActBackward {
    pub output: Region,
    pub grad: Region,
    pub rows: usize,
    pub cols: usize,
    pub activation: Activation,
}

impl ActBackward {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "act_backward";
}

impl Kernel for ActBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let len = self.rows * self.cols;
        vec![reads(self.output, len), writes(self.grad, len)]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let len = self.rows * self.cols;
        host.write([(self.grad, len)], |host, [grad]| {
            act_backward(host.read(self.output, len), grad, self.activation)
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: act_dims(self.rows, self.cols, self.activation),
            bindings: vec![(1, self.output), (2, self.grad)],
            groups: flat_groups(self.rows * self.cols),
        }
    }
}

/// The softmax Jacobian-vector product per row of `grad[rows, cols]`, in place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxBackward {
    pub output: Region,
    pub grad: Region,
    pub rows: usize,
    pub cols: usize,
}

impl SoftmaxBackward {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "softmax_backward";
}

impl Kernel for SoftmaxBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let len = self.rows * self.cols;
        vec![reads(self.output, len), writes(self.grad, len)]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let len = self.rows * self.cols;
        host.write([(self.grad, len)], |host, [grad]| {
            softmax_backward(host.read(self.output, len), grad, self.cols)
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: act_dims(self.rows, self.cols, Activation::Softmax),
            bindings: vec![(1, self.output), (2, self.grad)],
            groups: flat_groups(self.rows),
        }
    }

    fn row_loops(&self) -> Option<(&'static str, usize, usize)> {
        Some(("softmax backward", self.cols, 2))
    }
}

/// `values ← f(values)` for an elementwise activation.
pub fn act_forward(values: &mut [f32], activation: Activation) {
    for v in values {
        *v = activation.apply(*v);
    }
}

/// Row-wise softmax in place.
pub fn softmax(values: &mut [f32], cols: usize) {
    softmax_rows(values, cols);
}

/// `grad ← grad ⊙ f'(output)` for an elementwise activation, split over threads when long.
pub fn act_backward(output: &[f32], grad: &mut [f32], activation: Activation) {
    let grad = Disjoint::new(grad);
    for_ranges(grad.len(), &|range| {
        // SAFETY: `for_ranges` hands each part its own range.
        let grad = unsafe { grad.range(range.clone()) };
        let output = &output[range];
        // The match outside the loop, so that each arm's loop is vectorised.
        match activation {
            Activation::Relu => {
                for (g, &y) in grad.iter_mut().zip(output) {
                    *g *= Activation::Relu.derivative_from_output(y);
                }
            }
            other => {
                for (g, &y) in grad.iter_mut().zip(output) {
                    *g *= other.derivative_from_output(y);
                }
            }
        }
    });
}

/// Softmax Jacobian-vector product per row: `g_i ← y_i (g_i − Σ_j g_j y_j)`.
pub fn softmax_backward(output: &[f32], grad: &mut [f32], cols: usize) {
    for (g, y) in grad.chunks_exact_mut(cols).zip(output.chunks_exact(cols)) {
        let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
        for (gi, &yi) in g.iter_mut().zip(y) {
            *gi = yi * (*gi - dot);
        }
    }
}
