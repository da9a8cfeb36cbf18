//! A classifier's confusion counts summed on the device (`shaders/confusion.wgsl`), so that a validation
//! pass reads back `classes²` counts instead of every row's outputs. The counts are `u32` bit patterns
//! in an f32 buffer ([`f32::from_bits`]), added atomically on the GPU.

use super::launch::{flat_groups, Dims, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};

pub const SHADER: Shader = Shader {
    stem: "confusion",
    source: include_str!("../../shaders/confusion.wgsl"),
};

/// `counts[truth · classes + predicted] += 1` over `rows` rows (see the shader's header for the rules,
/// which are [`crate::Loss::row_hits`]'s): `outputs` values per row (one: above `threshold` is the second
/// class), targets `target_width` wide (a class index, or one-hot rows). `classes = max(outputs, 2)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfusionCounts {
    pub prediction: Region,
    pub target: Region,
    pub counts: Region,
    pub rows: usize,
    pub outputs: usize,
    pub target_width: usize,
    pub threshold: f32,
}

impl ConfusionCounts {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "confusion_counts";

    /// Classes counted: the outputs, or two for a single output.
    pub fn classes(&self) -> usize {
        self.outputs.max(2)
    }
}

impl Kernel for ConfusionCounts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let classes = self.classes();
        vec![
            reads(self.prediction, self.rows * self.outputs),
            reads(self.target, self.rows * self.target_width),
            writes(self.counts, classes * classes),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let classes = self.classes();
        host.write([(self.counts, classes * classes)], |host, [counts]| {
            confusion_counts(
                host.read(self.prediction, self.rows * self.outputs),
                host.read(self.target, self.rows * self.target_width),
                counts,
                self.outputs,
                self.target_width,
                self.threshold,
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.rows as u32,
                n: self.outputs as u32,
                k: self.target_width as u32,
                scale: self.threshold,
                ..Dims::default()
            },
            bindings: vec![(1, self.prediction), (2, self.target), (3, self.counts)],
            groups: flat_groups(self.rows),
        }
    }
}

/// The index of the first maximum of `values`.
fn first_max(values: &[f32]) -> usize {
    (0..values.len()).fold(0, |best, j| if values[j] > values[best] { j } else { best })
}

/// See [`ConfusionCounts`]; `counts` holds `u32` bit patterns.
pub fn confusion_counts(
    prediction: &[f32],
    target: &[f32],
    counts: &mut [f32],
    outputs: usize,
    target_width: usize,
    threshold: f32,
) {
    let classes = outputs.max(2);
    for (row, truth) in target.chunks_exact(target_width).enumerate() {
        let values = &prediction[row * outputs..(row + 1) * outputs];
        let predicted = if outputs == 1 {
            usize::from(values[0] > threshold)
        } else {
            first_max(values)
        };
        let truth = if target_width == 1 {
            truth[0] as usize
        } else {
            first_max(truth)
        };
        if truth < classes {
            let cell = &mut counts[truth * classes + predicted];
            *cell = f32::from_bits(cell.to_bits() + 1);
        }
    }
}
