//! Parameter updates (`shaders/optim.wgsl`) with PyTorch's rules (see [`crate::optim::Optimizer`]), and the
//! step counter Adam's bias corrections come from. Hyperparameters are read from a device buffer laid out as
//! [`crate::optim::hyper`].

use super::launch::{aligned, flat_groups, sum_windows, whole, Dims, Launch, FLAG_LAST};
use super::{reads, writes, HostBuffers, Kernel, Operand, Region, Shader};
use crate::host::pool::{for_ranges, Disjoint};
use crate::optim::hyper::{
    ALPHA, BETA1, BETA2, BIAS_CORRECTION1, BIAS_CORRECTION2, CENTERED, CLIP_NORM, CLIP_VALUE,
    EPSILON, GRAD_SCALE, GRAD_SQUARES, LEARNING_RATE, LEN as HYPER_LEN, MOMENTUM, STEP,
    WEIGHT_DECAY,
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

/// The gradients' global norm (after clipping by value) and the scale that brings it down to the
/// clipping norm, into `hyper` (see [`crate::optim::Clipping`]); the updates then read the scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradNormScale {
    pub grads: Region,
    pub hyper: Region,
}

impl GradNormScale {
    /// The CPU function and the WGSL entry point.
    pub const NAME: &'static str = "grad_norm_scale";
}

impl Kernel for GradNormScale {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn shader(&self) -> &'static Shader {
        &SHADER
    }

    fn operands(&self) -> Vec<Operand> {
        vec![
            reads(self.grads, self.grads.len),
            writes(self.hyper, HYPER_LEN),
        ]
    }

    fn run_cpu(&self, host: &mut HostBuffers) {
        host.write([(self.hyper, HYPER_LEN)], |host, [hyper]| {
            grad_norm_scale(host.read(self.grads, self.grads.len), hyper)
        });
    }

    fn launch(&self) -> Launch {
        Launch {
            dims: Dims {
                m: self.grads.len as u32,
                flags: FLAG_LAST,
                ..Dims::default()
            },
            bindings: vec![(2, self.grads), (6, self.hyper)],
            groups: [1, 1, 1],
        }
    }

    /// Windows of the gradients, each summed by one workgroup and added to the last one's sum: a window
    /// fits one binding and keeps each invocation's loop well under llvmpipe's 65535 iterations (at
    /// exactly 65535 the sums came back wrong).
    fn launches(&self, max_binding: usize) -> Vec<Launch> {
        let per = aligned(max_binding.min(NORM_WORKGROUP * NORM_WINDOW_STEPS));
        sum_windows(&self.launch(), self.grads.len, per, |window, begin, len| {
            window.dims.m = len as u32;
            window.bindings[0].1 = Region {
                offset: self.grads.offset + begin,
                len,
                ..self.grads
            };
        })
    }
}

/// Invocations of `grad_norm_scale`'s workgroup (`NORM_WORKGROUP` in optim.wgsl).
const NORM_WORKGROUP: usize = 256;
/// Loop iterations of each `grad_norm_scale` invocation per window.
const NORM_WINDOW_STEPS: usize = 32_768;

/// Declares a parameter-update op: the struct (parameters, gradients, the rule's state buffers, the
/// hyperparameters), its CPU run through the function `$cpu(params, grads, [state…], hyper)` and its launch
/// with each state buffer at its WGSL binding.
macro_rules! update_op {
    ($(#[$doc:meta])* $op:ident = $entry:literal by $cpu:ident, state [$($field:ident at $binding:literal),*]) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $op {
            pub params: Region,
            pub grads: Region,
            $(pub $field: Region,)*
            pub hyper: Region,
            /// Whether the gradients are clipped as `hyper`'s clipping entries say
            /// ([`crate::optim::Clipping`]); when not, those entries are not read.
            pub clipped: bool,
        }

        impl $op {
            /// The CPU function and the WGSL entry point.
            pub const NAME: &'static str = $entry;
        }

        impl Kernel for $op {
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
                    $(writes(self.$field, len),)*
                    reads(self.hyper, HYPER_LEN),
                ]
            }

            fn run_cpu(&self, host: &mut HostBuffers) {
                let len = self.params.len;
                let written = [(self.params, len) $(, (self.$field, len))*];
                host.write(written, |host, [params $(, $field)*]| {
                    let mut hyper = [0.0; HYPER_LEN];
                    hyper.copy_from_slice(host.read(self.hyper, HYPER_LEN));
                    if !self.clipped {
                        (hyper[CLIP_NORM], hyper[CLIP_VALUE]) = (0.0, 0.0);
                    }
                    $cpu(params, host.read(self.grads, len), [$($field),*], &hyper)
                });
            }

            fn launch(&self) -> Launch {
                Launch {
                    dims: update_dims(self.params.len),
                    bindings: vec![
                        (1, self.params),
                        (2, self.grads),
                        (HYPER_BINDING, self.hyper),
                        $(($binding, self.$field),)*
                    ],
                    groups: flat_groups(self.params.len),
                }
            }

            fn launches(&self, max_binding: usize) -> Vec<Launch> {
                update_launches(self.launch(), self.params.len, max_binding)
            }

            fn constants(&self) -> Vec<(&'static str, f64)> {
                vec![("CLIPPED", f64::from(u8::from(self.clipped)))]
            }
        }
    };
}

update_op! {
    /// Plain gradient descent with optional weight decay (see [`crate::optim::Optimizer::Sgd`]).
    SgdUpdate = "sgd_update" by sgd_update, state []
}

update_op! {
    /// Heavy-ball momentum (see [`crate::optim::Optimizer::Momentum`]).
    MomentumUpdate = "momentum_update" by momentum_update, state [velocity at 4]
}

update_op! {
    /// Nesterov momentum (see [`crate::optim::Optimizer::Nesterov`]).
    NesterovUpdate = "nesterov_update" by nesterov_update, state [velocity at 4]
}

update_op! {
    /// Adam (see [`crate::optim::Optimizer::Adam`]).
    AdamUpdate = "adam_update" by adam_update, state [first_moment at 4, second_moment at 5]
}

update_op! {
    /// AdamW (see [`crate::optim::Optimizer::AdamW`]).
    AdamWUpdate = "adamw_update" by adamw_update, state [first_moment at 4, second_moment at 5]
}

update_op! {
    /// RMSprop, plain, with momentum or centered (see [`crate::optim::Optimizer::Rmsprop`]).
    RmspropUpdate = "rmsprop_update" by rmsprop_update,
        state [square_avg at 4, momentum_buffer at 5, grad_avg at 7]
}

/// `step += 1`, then Adam's bias corrections `1 − β^step`.
pub fn advance_step(hyper: &mut [f32]) {
    hyper[STEP] += 1.0;
    hyper[BIAS_CORRECTION1] = 1.0 - hyper[BETA1].powf(hyper[STEP]);
    hyper[BIAS_CORRECTION2] = 1.0 - hyper[BETA2].powf(hyper[STEP]);
}

// The updates run over disjoint ranges of the parameters, split between threads when long (`for_ranges`);
// each element's arithmetic is the same however it is split.

/// A gradient clamped to `±clip_value` when that is set, untouched otherwise (so a NaN stays NaN), as
/// optim.wgsl's `clip`.
#[inline(always)]
fn clip(g: f32, clip_value: f32) -> f32 {
    if clip_value > 0.0 {
        g.clamp(-clip_value, clip_value)
    } else {
        g
    }
}

/// `Σ clamp(g)²` in `grad_norm_scale`'s order (256 strided partial sums, then a fixed tree) into
/// `hyper[GRAD_SQUARES]`, and `min(1, CLIP_NORM / (√Σ + 1e-6))` into `hyper[GRAD_SCALE]`, as
/// `torch.nn.utils.clip_grad_norm_` scales.
pub fn grad_norm_scale(grads: &[f32], hyper: &mut [f32]) {
    let clip_value = hyper[CLIP_VALUE];
    let mut partial = [0.0f32; NORM_WORKGROUP];
    // Chunk by chunk, so the array is read once; each partial still adds its elements in index order.
    for chunk in grads.chunks(NORM_WORKGROUP) {
        for (sum, &g) in partial.iter_mut().zip(chunk) {
            let g = clip(g, clip_value);
            *sum += g * g;
        }
    }
    let mut stride = NORM_WORKGROUP / 2;
    while stride > 0 {
        for t in 0..stride {
            partial[t] += partial[t + stride];
        }
        stride /= 2;
    }
    hyper[GRAD_SQUARES] = partial[0];
    hyper[GRAD_SCALE] = (hyper[CLIP_NORM] / (partial[0].sqrt() + 1e-6)).min(1.0);
}

/// Runs `rule(w, g, state)` for every parameter `w`, its gradient `g` clipped as `hyper` says (see
/// [`crate::optim::Clipping`]) and its entries of the `S` state buffers.
fn each_parameter<const S: usize>(
    params: &mut [f32],
    grads: &[f32],
    state: [&mut [f32]; S],
    hyper: &[f32],
    rule: impl Fn(&mut f32, f32, [&mut f32; S]) + Sync,
) {
    let clip_value = hyper[CLIP_VALUE];
    let scale = if hyper[CLIP_NORM] > 0.0 {
        hyper[GRAD_SCALE]
    } else {
        1.0
    };
    let len = params.len();
    let params = Disjoint::new(params);
    let state = state.map(|s| {
        assert_eq!(s.len(), len, "optimizer state length");
        Disjoint::new(s)
    });
    for_ranges(len, &|r| {
        // Copies, not references into the caller's frame: see the loop below.
        let (clip_value, scale) = (clip_value, scale);
        // SAFETY: `for_ranges` hands each part its own range.
        let params = unsafe { params.range(r.clone()) };
        let n = params.len();
        let grads = &grads[r.clone()][..n];
        let mut state = state
            .each_ref()
            .map(|s| &mut unsafe { s.range(r.clone()) }[..n]);
        // Indices into slices all `n` long, so the bounds checks fold away. The rules are `move`
        // closures and the clipping constants local copies: constants read through references were
        // reloaded every element (they might alias the parameters), which kept the loop scalar and the
        // updates 3-4x slower. Without clipping by value no clamp runs (and a NaN stays NaN).
        for i in 0..n {
            let g = clip(grads[i], clip_value) * scale;
            rule(&mut params[i], g, state.each_mut().map(|s| &mut s[i]));
        }
    });
}

/// `w −= lr · (g + wd·w)`.
pub fn sgd_update(params: &mut [f32], grads: &[f32], state: [&mut [f32]; 0], hyper: &[f32]) {
    let (lr, wd) = (hyper[LEARNING_RATE], hyper[WEIGHT_DECAY]);
    each_parameter(params, grads, state, hyper, move |w, g, []| {
        *w -= lr * (g + wd * *w)
    });
}

/// `v = μ·v + (g + wd·w);  w −= lr · v`.
pub fn momentum_update(
    params: &mut [f32],
    grads: &[f32],
    velocity: [&mut [f32]; 1],
    hyper: &[f32],
) {
    let (lr, mu, wd) = (hyper[LEARNING_RATE], hyper[MOMENTUM], hyper[WEIGHT_DECAY]);
    each_parameter(params, grads, velocity, hyper, move |w, g, [v]| {
        *v = mu * *v + (g + wd * *w);
        *w -= lr * *v;
    });
}

/// `g = g + wd·w;  v = μ·v + g;  w −= lr · (g + μ·v)`.
pub fn nesterov_update(
    params: &mut [f32],
    grads: &[f32],
    velocity: [&mut [f32]; 1],
    hyper: &[f32],
) {
    let (lr, mu, wd) = (hyper[LEARNING_RATE], hyper[MOMENTUM], hyper[WEIGHT_DECAY]);
    each_parameter(params, grads, velocity, hyper, move |w, g, [v]| {
        let g = g + wd * *w;
        *v = mu * *v + g;
        *w -= lr * (g + mu * *v);
    });
}

/// Adam as PyTorch computes it: `w −= (lr / bc1) · m / (√v / √bc2 + ε)`.
pub fn adam_update(params: &mut [f32], grads: &[f32], moments: [&mut [f32]; 2], hyper: &[f32]) {
    let (lr, wd, eps) = (hyper[LEARNING_RATE], hyper[WEIGHT_DECAY], hyper[EPSILON]);
    let (beta1, beta2) = (hyper[BETA1], hyper[BETA2]);
    let step_size = lr / hyper[BIAS_CORRECTION1];
    let bias_correction2_sqrt = hyper[BIAS_CORRECTION2].sqrt();
    each_parameter(params, grads, moments, hyper, move |w, g, [m, v]| {
        let g = g + wd * *w;
        *m = beta1 * *m + (1.0 - beta1) * g;
        *v = beta2 * *v + (1.0 - beta2) * g * g;
        *w -= step_size * *m / (v.sqrt() / bias_correction2_sqrt + eps);
    });
}

/// AdamW as PyTorch computes it: `w ← w · (1 − lr·wd)`, then Adam's step on the raw gradient.
pub fn adamw_update(params: &mut [f32], grads: &[f32], moments: [&mut [f32]; 2], hyper: &[f32]) {
    let (lr, wd, eps) = (hyper[LEARNING_RATE], hyper[WEIGHT_DECAY], hyper[EPSILON]);
    let (beta1, beta2) = (hyper[BETA1], hyper[BETA2]);
    let step_size = lr / hyper[BIAS_CORRECTION1];
    let bias_correction2_sqrt = hyper[BIAS_CORRECTION2].sqrt();
    each_parameter(params, grads, moments, hyper, move |w, g, [m, v]| {
        let decayed = *w * (1.0 - lr * wd);
        *m = beta1 * *m + (1.0 - beta1) * g;
        *v = beta2 * *v + (1.0 - beta2) * g * g;
        *w = decayed - step_size * *m / (v.sqrt() / bias_correction2_sqrt + eps);
    });
}

/// RMSprop as PyTorch computes it (see [`crate::optim::Optimizer::Rmsprop`]), with `state` the square
/// average, the momentum buffer and the gradient average; the centered variance is clamped at 0 before its
/// square root.
pub fn rmsprop_update(params: &mut [f32], grads: &[f32], state: [&mut [f32]; 3], hyper: &[f32]) {
    let (lr, wd, eps) = (hyper[LEARNING_RATE], hyper[WEIGHT_DECAY], hyper[EPSILON]);
    let (alpha, mu, centered) = (hyper[ALPHA], hyper[MOMENTUM], hyper[CENTERED] != 0.0);
    each_parameter(params, grads, state, hyper, move |w, g, [s, b, a]| {
        let g = g + wd * *w;
        *s = alpha * *s + (1.0 - alpha) * g * g;
        let mut variance = *s;
        if centered {
            *a = alpha * *a + (1.0 - alpha) * g;
            variance = (*s - *a * *a).max(0.0);
        }
        let denominator = variance.sqrt() + eps;
        if mu > 0.0 {
            *b = mu * *b + g / denominator;
            *w -= lr * *b;
        } else {
            *w -= lr * g / denominator;
        }
    });
}
