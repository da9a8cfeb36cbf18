//! Parameter updates (`shaders/optim.wgsl`) with PyTorch's rules (see [`crate::optim::Optimizer`]), and the
//! step counter Adam's bias corrections come from. Hyperparameters are read from a device buffer laid out as
//! [`crate::optim::hyper`].

use super::launch::{aligned, flat_groups, whole, Dims, Launch};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::host::pool::{for_ranges, Disjoint};
use crate::optim::hyper::{
    BETA1, BETA2, BIAS_CORRECTION1, BIAS_CORRECTION2, EPSILON, LEARNING_RATE, LEN as HYPER_LEN,
    MOMENTUM, STEP, WEIGHT_DECAY,
};

pub const SHADER: Shader = Shader {
    stem: "optim",
    source: include_str!("../../shaders/optim.wgsl"),
};

/// The binding of the hyperparameters, which stay whole when the rest is split.
const HYPER_BINDING: u32 = 3;

/// One dispatch over `len` parameters; past one storage binding, the same slice of every per-parameter
/// operand per dispatch (the update is elementwise).
fn update_launches(launch: Launch, len: usize, max_binding: usize) -> Vec<Launch> {
    let base = whole(launch);
    if len <= max_binding {
        return vec![base];
    }
    let per = aligned(max_binding);
    (0..len)
        .step_by(per)
        .map(|first| {
            let part = per.min(len - first);
            let mut chunk = base.clone();
            chunk.dims.m = part as u32;
            chunk.groups = flat_groups(part);
            for entry in &mut chunk.bindings {
                if entry.0 != HYPER_BINDING {
                    entry.1 = Region {
                        offset: entry.1.offset + first,
                        len: part,
                        ..entry.1
                    };
                }
            }
            chunk
        })
        .collect()
}

fn update_dims(len: usize) -> Dims {
    Dims {
        m: len as u32,
        ..Dims::default()
    }
}

/// Counts a step in `hyper` and refreshes Adam's bias corrections (see [`crate::optim::hyper`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdvanceStep {
    pub hyper: Region,
}

impl AdvanceStep {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "advance_step";
}

impl Kernel for AdvanceStep {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![writes(self.hyper, HYPER_LEN)]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.hyper, HYPER_LEN)], |_, [hyper]| advance_step(hyper));
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims::default(),
            bindings: vec![(6, self.hyper)],
            groups: [1, 1, 1],
        }
    }

    fn reads_dims(&self) -> bool {
        false
    }
}

/// Plain gradient descent with optional weight decay (see [`crate::optim::Optimizer::Sgd`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdUpdate {
    pub params: Region,
    pub grads: Region,
    pub hyper: Region,
}

impl SgdUpdate {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "sgd_update";
}

impl Kernel for SgdUpdate {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let len = self.params.len;
        vec![
            writes(self.params, len),
            reads(self.grads, len),
            reads(self.hyper, HYPER_LEN),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let len = self.params.len;
        host.write([(self.params, len)], |host, [params]| {
            sgd_update(
                params,
                host.read(self.grads, len),
                host.read(self.hyper, HYPER_LEN),
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: update_dims(self.params.len),
            bindings: vec![(1, self.params), (2, self.grads), (3, self.hyper)],
            groups: flat_groups(self.params.len),
        }
    }

    fn launches(&self, max_binding: usize) -> Vec<Launch> {
        update_launches(self.launch(), self.params.len, max_binding)
    }
}

/// Heavy-ball momentum (see [`crate::optim::Optimizer::Momentum`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MomentumUpdate {
    pub params: Region,
    pub grads: Region,
    pub velocity: Region,
    pub hyper: Region,
}

impl MomentumUpdate {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "momentum_update";
}

impl Kernel for MomentumUpdate {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let len = self.params.len;
        vec![
            writes(self.params, len),
            reads(self.grads, len),
            writes(self.velocity, len),
            reads(self.hyper, HYPER_LEN),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let len = self.params.len;
        host.write(
            [(self.params, len), (self.velocity, len)],
            |host, [params, velocity]| {
                momentum_update(
                    params,
                    host.read(self.grads, len),
                    velocity,
                    host.read(self.hyper, HYPER_LEN),
                )
            },
        );
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: update_dims(self.params.len),
            bindings: vec![
                (1, self.params),
                (2, self.grads),
                (3, self.hyper),
                (4, self.velocity),
            ],
            groups: flat_groups(self.params.len),
        }
    }

    fn launches(&self, max_binding: usize) -> Vec<Launch> {
        update_launches(self.launch(), self.params.len, max_binding)
    }
}

/// Adam (see [`crate::optim::Optimizer::Adam`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamUpdate {
    pub params: Region,
    pub grads: Region,
    pub first_moment: Region,
    pub second_moment: Region,
    pub hyper: Region,
}

impl AdamUpdate {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "adam_update";
}

impl Kernel for AdamUpdate {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        let len = self.params.len;
        vec![
            writes(self.params, len),
            reads(self.grads, len),
            writes(self.first_moment, len),
            writes(self.second_moment, len),
            reads(self.hyper, HYPER_LEN),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        let len = self.params.len;
        let written = [
            (self.params, len),
            (self.first_moment, len),
            (self.second_moment, len),
        ];
        host.write(written, |host, [params, m, v]| {
            adam_update(
                params,
                host.read(self.grads, len),
                (m, v),
                host.read(self.hyper, HYPER_LEN),
            )
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: update_dims(self.params.len),
            bindings: vec![
                (1, self.params),
                (2, self.grads),
                (3, self.hyper),
                (4, self.first_moment),
                (5, self.second_moment),
            ],
            groups: flat_groups(self.params.len),
        }
    }

    fn launches(&self, max_binding: usize) -> Vec<Launch> {
        update_launches(self.launch(), self.params.len, max_binding)
    }
}

/// `step += 1`, then Adam's bias corrections `1 − β^step`.
pub fn advance_step(hyper: &mut [f32]) {
    hyper[STEP] += 1.0;
    hyper[BIAS_CORRECTION1] = 1.0 - hyper[BETA1].powf(hyper[STEP]);
    hyper[BIAS_CORRECTION2] = 1.0 - hyper[BETA2].powf(hyper[STEP]);
}

// The updates run over disjoint ranges of the parameters, split between threads when long (`for_ranges`);
// each element's arithmetic is the same however it is split.

/// `w −= lr · (g + wd·w)`.
pub fn sgd_update(params: &mut [f32], grads: &[f32], hyper: &[f32]) {
    let (lr, wd) = (hyper[LEARNING_RATE], hyper[WEIGHT_DECAY]);
    let params = Disjoint::new(params);
    for_ranges(params.len(), &|r| {
        // SAFETY: `for_ranges` hands each part its own range.
        let params = unsafe { params.range(r.clone()) };
        for (w, &g) in params.iter_mut().zip(&grads[r]) {
            *w -= lr * (g + wd * *w);
        }
    });
}

/// `v = μ·v + (g + wd·w);  w −= lr · v`.
pub fn momentum_update(params: &mut [f32], grads: &[f32], velocity: &mut [f32], hyper: &[f32]) {
    let (lr, mu, wd) = (hyper[LEARNING_RATE], hyper[MOMENTUM], hyper[WEIGHT_DECAY]);
    let (params, velocity) = (Disjoint::new(params), Disjoint::new(velocity));
    for_ranges(params.len(), &|r| {
        // SAFETY: `for_ranges` hands each part its own range.
        let (params, velocity) = unsafe { (params.range(r.clone()), velocity.range(r.clone())) };
        for ((w, &g), v) in params.iter_mut().zip(&grads[r]).zip(velocity) {
            *v = mu * *v + (g + wd * *w);
            *w -= lr * *v;
        }
    });
}

/// Adam as PyTorch computes it: `w −= (lr / bc1) · m / (√v / √bc2 + ε)`.
pub fn adam_update(
    params: &mut [f32],
    grads: &[f32],
    (m, v): (&mut [f32], &mut [f32]),
    hyper: &[f32],
) {
    let (lr, wd, eps) = (hyper[LEARNING_RATE], hyper[WEIGHT_DECAY], hyper[EPSILON]);
    let (beta1, beta2) = (hyper[BETA1], hyper[BETA2]);
    let step_size = lr / hyper[BIAS_CORRECTION1];
    let bias_correction2_sqrt = hyper[BIAS_CORRECTION2].sqrt();
    let (params, m, v) = (Disjoint::new(params), Disjoint::new(m), Disjoint::new(v));
    for_ranges(params.len(), &|r| {
        // SAFETY: `for_ranges` hands each part its own range.
        let (params, m, v) = unsafe {
            (
                params.range(r.clone()),
                m.range(r.clone()),
                v.range(r.clone()),
            )
        };
        for (((w, &g), m), v) in params.iter_mut().zip(&grads[r]).zip(m).zip(v) {
            let g = g + wd * *w;
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *w -= step_size * *m / (v.sqrt() / bias_correction2_sqrt + eps);
        }
    });
}
