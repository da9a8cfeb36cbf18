//! Inverted dropout (`shaders/dropout.wgsl`): each element kept with probability `1 − p` and scaled by
//! `1 / (1 − p)`, else zeroed. The mask comes from a counter-based hash of (element, step, seed), computed
//! the same bit for bit in Rust and WGSL, so CPU and GPU runs draw the same masks and a run repeats on each
//! device. The step is read on the device from the hyperparameter buffer, where `advance_step` counts it, so
//! a step needs nothing from the host. The backward pass is this op on the gradients.

use super::launch::{flat_groups, Dims, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::optim::hyper::{LEN as HYPER_LEN, STEP};

pub const SHADER: Shader = Shader {
    stem: "dropout",
    source: include_str!("../../shaders/dropout.wgsl"),
};

/// `output[i] = input[i] · scale` where `hash(i ^ hash(step ^ hash(seed))) >= threshold`, else 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub input: Region,
    pub output: Region,
    /// The hyperparameter buffer: the step count is its entry [`STEP`].
    pub hyper: Region,
    pub len: usize,
    pub seed: u32,
    /// `p · 2³²` rounded: an element is dropped when its draw is below it (0 keeps everything).
    pub threshold: u32,
    pub scale: f32,
}

impl Dropout {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "dropout";

    /// The op of a dropout layer with probability `p` in training, or the identity (`training` false).
    pub fn new(
        (input, output, hyper): (Region, Region, Region),
        len: usize,
        seed: u32,
        p: f32,
        training: bool,
    ) -> Dropout {
        let (threshold, scale) = if training && p > 0.0 {
            (threshold(p), 1.0 / (1.0 - p))
        } else {
            (0, 1.0)
        };
        Dropout {
            input,
            output,
            hyper,
            len,
            seed,
            threshold,
            scale,
        }
    }
}

/// `p · 2³²`, rounded, at most `u32::MAX` (`p` is below 1).
pub fn threshold(p: f32) -> u32 {
    (f64::from(p) * 4294967296.0)
        .round()
        .min(f64::from(u32::MAX)) as u32
}

impl Kernel for Dropout {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.input, self.len),
            writes(self.output, self.len),
            reads(self.hyper, HYPER_LEN),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.output, self.len)], |host, [output]| {
            let step = host.read(self.hyper, HYPER_LEN)[STEP];
            dropout(
                host.read(self.input, self.len),
                output,
                step,
                (self.seed, self.threshold, self.scale),
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.len as u32,
                k: STEP as u32,
                n: self.seed,
                stride: self.threshold,
                scale: self.scale,
                ..Dims::default()
            },
            bindings: vec![(1, self.input), (2, self.output), (3, self.hyper)],
            groups: flat_groups(self.len),
        }
    }
}

/// Chris Wellons' lowbias32 integer hash: every output bit depends on every input bit.
pub fn hash(value: u32) -> u32 {
    let mut x = value;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The kept elements of `input` scaled, the rest zeroed (see [`Dropout`]); `step` as the device stores it.
pub fn dropout(
    input: &[f32],
    output: &mut [f32],
    step: f32,
    (seed, threshold, scale): (u32, u32, f32),
) {
    let key = hash(step as u32 ^ hash(seed));
    for (i, (out, &x)) in output.iter_mut().zip(input).enumerate() {
        *out = if hash(i as u32 ^ key) >= threshold {
            x * scale
        } else {
            0.0
        };
    }
}
