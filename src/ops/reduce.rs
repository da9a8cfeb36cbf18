//! Sums over the rows of a batch (`shaders/reduce.wgsl`): a dense layer's bias gradient.

use super::launch::{flat_groups, sum_windows, whole, Dims, Launch, REDUCTION_WINDOW};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};

pub const SHADER: Shader = Shader {
    stem: "reduce",
    source: include_str!("../../shaders/reduce.wgsl"),
};

/// `grad_bias[j] = Σ_i grad_output[i, j]`, summed over rows in order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BiasGrad {
    pub grad_output: Region,
    pub grad_bias: Region,
    pub rows: usize,
    pub cols: usize,
}

impl BiasGrad {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "bias_grad";
}

impl Kernel for BiasGrad {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.grad_output, self.rows * self.cols),
            writes(self.grad_bias, self.cols),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let (rows, cols) = (self.rows, self.cols);
        host.write([(self.grad_bias, cols)], |host, [grad_bias]| {
            bias_grad(host.read(self.grad_output, rows * cols), grad_bias, cols)
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                n: self.cols as u32,
                ..Dims::default()
            },
            bindings: vec![(1, self.grad_output), (2, self.grad_bias)],
            groups: flat_groups(self.cols),
        }
    }

    fn launches(&self, _max_binding: usize) -> Vec<Launch> {
        let mut base = whole(self.launch());
        base.dims.stride = self.rows as u32;
        sum_windows(&base, self.rows, REDUCTION_WINDOW, |w, _, len| {
            w.dims.m = len as u32
        })
    }
}

/// Column sums of `grad_output[rows, cols]`, over rows in order.
pub fn bias_grad(grad_output: &[f32], grad_bias: &mut [f32], cols: usize) {
    grad_bias.fill(0.0);
    for row in grad_output.chunks_exact(cols) {
        for (b, &g) in grad_bias.iter_mut().zip(row) {
            *b += g;
        }
    }
}
