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

/// Each `[rows, cols]` matrix of `input` transposed into `output`, in tiles that stay in cache, split over
/// threads by matrix.
pub fn transpose_batched(input: &[f32], output: &mut [f32], rows: usize, cols: usize) {
    const TILE: usize = 32;
    let matrix = rows * cols;
    for_samples(output, matrix, &|first, part| {
        for (i, to) in part.chunks_exact_mut(matrix).enumerate() {
            let from = &input[(first + i) * matrix..][..matrix];
            for r0 in (0..rows).step_by(TILE) {
                for c0 in (0..cols).step_by(TILE) {
                    for r in r0..(r0 + TILE).min(rows) {
                        for c in c0..(c0 + TILE).min(cols) {
                            to[c * rows + r] = from[r * cols + c];
                        }
                    }
                }
            }
        }
    });
}
