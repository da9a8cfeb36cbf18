//! Data layout (`shaders/layout.wgsl`): a conv layer's product gives rows of channels (`[n, position,
//! channel]`), the network keeps NCHW (`[n, channel, position]`, as PyTorch); one batched transpose turns one
//! into the other, both ways.

use super::launch::{flat_groups, Dims, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::host::pool::for_samples;

pub const SHADER: Shader = Shader {
    stem: "layout",
    source: include_str!("../../shaders/layout.wgsl"),
};

/// `output[b, c, r] = input[b, r, c]` for `b < batch`, `r < rows`, `c < cols`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransposeBatched {
    pub input: Region,
    pub output: Region,
    pub batch: usize,
    pub rows: usize,
    pub cols: usize,
}

impl TransposeBatched {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "transpose_batched";

    fn len(&self) -> usize {
        self.batch * self.rows * self.cols
    }
}

impl Kernel for TransposeBatched {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.input, self.len()),
            writes(self.output, self.len()),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.output, self.len())], |host, [output]| {
            transpose_batched(
                host.read(self.input, self.len()),
                output,
                self.rows,
                self.cols,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                n: self.cols as u32,
                batch: self.batch as u32,
                ..Dims::default()
            },
            bindings: vec![(1, self.input), (2, self.output)],
            groups: flat_groups(self.len()),
        }
    }
}

/// Each `[rows, cols]` matrix of `input` transposed into `output`, split over threads by matrix. The
/// output is written in order; the reads stride through one matrix, which stays in cache (a conv layer's
/// is at most tens of KB per sample).
pub fn transpose_batched(input: &[f32], output: &mut [f32], rows: usize, cols: usize) {
    let matrix = rows * cols;
    for_samples(output, matrix, &|first, part| {
        for (i, to) in part.chunks_exact_mut(matrix).enumerate() {
            let from = &input[(first + i) * matrix..][..matrix];
            for (c, column) in to.chunks_exact_mut(rows).enumerate() {
                for (r, value) in column.iter_mut().enumerate() {
                    *value = from[r * cols + c];
                }
            }
        }
    });
}
