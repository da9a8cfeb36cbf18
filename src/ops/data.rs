//! Batches gathered on the device from a training set held there (`shaders/data.wgsl`). Row indices are
//! `u32` bit patterns stored in f32 buffers ([`f32::from_bits`]), so every buffer stays `f32` on the host.

use super::launch::{flat_groups, Dims, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};

pub const SHADER: Shader = Shader {
    stem: "data",
    source: include_str!("../../shaders/data.wgsl"),
};

/// `output[r, :] = source[order[cursor + r], :]` for `r < rows`: a mini-batch gathered from a training
/// set held on the device. Positions past `order` and rows past `source` give zeros.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GatherRows {
    pub source: Region,
    pub order: Region,
    pub cursor: Region,
    pub output: Region,
    pub rows: usize,
    pub cols: usize,
}

impl GatherRows {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "gather_rows";
}

impl Kernel for GatherRows {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.source, self.cols),
            reads(self.order, 1),
            reads(self.cursor, 1),
            writes(self.output, self.rows * self.cols),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let len = self.rows * self.cols;
        host.write([(self.output, len)], |host, [output]| {
            gather_rows(
                host.read(self.source, self.source.len),
                host.read(self.order, self.order.len),
                host.read(self.cursor, 1)[0],
                output,
                self.cols,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                k: (self.source.len / self.cols) as u32,
                n: self.cols as u32,
                stride: self.order.len as u32,
                ..Dims::default()
            },
            bindings: vec![
                (1, self.source),
                (2, self.order),
                (3, self.output),
                (4, self.cursor),
            ],
            groups: flat_groups(self.rows * self.cols),
        }
    }
}

/// `cursor += rows` (a `u32` bit pattern): the next gather starts after this batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdvanceCursor {
    pub cursor: Region,
    pub rows: usize,
}

impl AdvanceCursor {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "advance_cursor";
}

impl Kernel for AdvanceCursor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![writes(self.cursor, 1)]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.cursor, 1)], |_, [cursor]| {
            advance_cursor(cursor, self.rows)
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                ..Dims::default()
            },
            bindings: vec![(5, self.cursor)],
            groups: [1, 1, 1],
        }
    }
}

/// `output[r, :] = source[order[cursor + r], :]`, indices as `u32` bit patterns; zeros past either end.
pub fn gather_rows(source: &[f32], order: &[f32], cursor: f32, output: &mut [f32], cols: usize) {
    let first = cursor.to_bits() as usize;
    for (r, row) in output.chunks_exact_mut(cols).enumerate() {
        let index = order.get(first + r).map(|i| i.to_bits() as usize);
        match index.and_then(|i| source.get(i * cols..(i + 1) * cols)) {
            Some(from) => row.copy_from_slice(from),
            None => row.fill(0.0),
        }
    }
}

/// `cursor += rows`, as a `u32` bit pattern.
pub fn advance_cursor(cursor: &mut [f32], rows: usize) {
    cursor[0] = f32::from_bits(cursor[0].to_bits().wrapping_add(rows as u32));
}
