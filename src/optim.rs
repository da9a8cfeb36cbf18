//! Optimizers with PyTorch's update rules. The hyperparameters live in one small device buffer (layout in
//! [`hyper`]) so a step needs no host round trip: the host writes the first [`hyper::HOST_LEN`] entries when
//! they change, and the `advance_step` op counts steps and refreshes Adam's bias corrections on the device.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Indices into the hyperparameter buffer (`HYPER_*` in `shaders/optim.wgsl`).
pub mod hyper {
    /// The learning rate `lr` that scales every update.
    pub const LEARNING_RATE: usize = 0;
    /// The momentum factor μ of SGD with momentum, Nesterov and RMSprop.
    pub const MOMENTUM: usize = 1;
    /// Adam's β1, the decay rate of the first moment.
    pub const BETA1: usize = 2;
    /// Adam's β2, the decay rate of the second moment.
    pub const BETA2: usize = 3;
    /// The ε added to the denominator by Adam and RMSprop.
    pub const EPSILON: usize = 4;
    /// The weight decay `wd` (coupled L2 penalty, or AdamW's decoupled decay).
    pub const WEIGHT_DECAY: usize = 5;
    /// RMSprop's smoothing constant α.
    pub const ALPHA: usize = 6;
    /// 1 for centered RMSprop, else 0.
    pub const CENTERED: usize = 7;
    /// The largest global gradient norm let through (0: no clipping by norm).
    pub const CLIP_NORM: usize = 8;
    /// The largest gradient magnitude let through (0: no clipping by value).
    pub const CLIP_VALUE: usize = 9;
    /// Steps taken, counted on the device by `advance_step`.
    pub const STEP: usize = 10;
    /// `1 − β1^step`, written by `advance_step`.
    pub const BIAS_CORRECTION1: usize = 11;
    /// `1 − β2^step`, written by `advance_step`.
    pub const BIAS_CORRECTION2: usize = 12;
    /// The sum of the squared (value-clipped) gradients so far, written by `grad_norm_scale`.
    pub const GRAD_SQUARES: usize = 13;
    /// What every gradient is multiplied by to bring the global norm to [`CLIP_NORM`], written by
    /// `grad_norm_scale` (read only while clipping by norm).
    pub const GRAD_SCALE: usize = 14;
    /// Entries the host owns (the rest belong to the device).
    pub const HOST_LEN: usize = 10;
    /// Entries in the whole buffer, host-owned and device-owned.
    pub const LEN: usize = 15;
}

/// Gradient clipping before the update, as `torch.nn.utils.clip_grad_value_` and then
/// `clip_grad_norm_` would do it: each gradient is first clamped to `[−value, value]`, then all of them
/// are scaled by `min(1, norm / (‖g‖₂ + 1e-6))`, `‖g‖₂` taken over every parameter of the network.
/// Weight decay is added after clipping, inside the optimizer, as in PyTorch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clipping {
    /// The largest global L2 norm of the gradients (`clip_grad_norm_`'s `max_norm`); `None`: not clipped.
    pub norm: Option<f32>,
    /// The largest magnitude of any one gradient (`clip_grad_value_`'s `clip_value`); `None`: not clipped.
    pub value: Option<f32>,
}

/// PyTorch's default momentum factor for the CLI's `momentum` and `nesterov` optimizers.
pub const DEFAULT_MOMENTUM: f32 = 0.9;

/// How gradients become parameter updates. With weight decay `wd`, every rule but AdamW first takes
/// `g ← g + wd · w` (PyTorch's coupled L2 penalty); AdamW shrinks the weights instead.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Optimizer {
    /// `w ← w − lr · g`.
    Sgd,
    /// `v ← μ · v + g;  w ← w − lr · v` (PyTorch `SGD(momentum=μ)`, no dampening, not Nesterov).
    Momentum {
        /// The momentum factor μ, in `[0, 1)`.
        momentum: f32,
    },
    /// `v ← μ · v + g;  w ← w − lr · (g + μ · v)` (PyTorch `SGD(momentum=μ, nesterov=True)`).
    Nesterov {
        /// The momentum factor μ, in `[0, 1)`.
        momentum: f32,
    },
    /// `m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
    ///  w ← w − lr/(1−β1^t) · m / (√v / √(1−β2^t) + ε)` (PyTorch `Adam`).
    Adam {
        /// Decay rate β1 of the first-moment average (`torch.optim.Adam`'s `betas[0]`), in `[0, 1)`.
        beta1: f32,
        /// Decay rate β2 of the second-moment average (`betas[1]`), in `[0, 1)`.
        beta2: f32,
        /// Added to the denominator for numerical stability (`eps`), > 0.
        epsilon: f32,
    },
    /// Adam on the raw gradient after the decoupled decay `w ← w · (1 − lr · wd)` (PyTorch `AdamW`).
    AdamW {
        /// Decay rate β1 of the first-moment average (`torch.optim.AdamW`'s `betas[0]`), in `[0, 1)`.
        beta1: f32,
        /// Decay rate β2 of the second-moment average (`betas[1]`), in `[0, 1)`.
        beta2: f32,
        /// Added to the denominator for numerical stability (`eps`), > 0.
        epsilon: f32,
    },
    /// `s ← α·s + (1−α)·g²`; centered: `ḡ ← α·ḡ + (1−α)·g`, `d = √(s − ḡ²) + ε`, else `d = √s + ε`;
    /// with momentum `b ← μ·b + g/d;  w ← w − lr·b`, else `w ← w − lr·g/d` (PyTorch `RMSprop`).
    Rmsprop {
        /// Smoothing constant α of the square average (`torch.optim.RMSprop`'s `alpha`), in `[0, 1)`.
        alpha: f32,
        /// Added to the denominator for numerical stability (`eps`), > 0.
        epsilon: f32,
        /// Momentum factor μ, in `[0, 1)`; 0: no momentum buffer is used.
        momentum: f32,
        /// Whether to divide by the estimated variance `s − ḡ²` instead of the square average `s`.
        centered: bool,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults: β1 0.9, β2 0.999, ε 1e-8.
    pub const ADAM: Optimizer = Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    };

    /// AdamW with PyTorch's defaults: β1 0.9, β2 0.999, ε 1e-8 (and weight decay 0.01, see
    /// [`Self::default_weight_decay`]).
    pub const ADAMW: Optimizer = Optimizer::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    };

    /// RMSprop with PyTorch's defaults: α 0.99, ε 1e-8, no momentum, not centered.
    pub const RMSPROP: Optimizer = Optimizer::Rmsprop {
        alpha: 0.99,
        epsilon: 1e-8,
        momentum: 0.0,
        centered: false,
    };

    /// The rule's lower-case name as the CLI spells it (`sgd`, `adamw`, …); also its `Display`.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum { .. } => "momentum",
            Optimizer::Nesterov { .. } => "nesterov",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
            Optimizer::Rmsprop { .. } => "rmsprop",
        }
    }

    /// PyTorch's default weight decay for this rule: 0.01 for AdamW, 0 for the others.
    pub fn default_weight_decay(self) -> f32 {
        match self {
            Optimizer::AdamW { .. } => 0.01,
            _ => 0.0,
        }
    }

    /// Per-parameter state buffers the rule keeps: velocity; first and second moments; or RMSprop's
    /// square average, momentum buffer and gradient average (all three kept whatever the settings, so one
    /// kernel serves every RMSprop).
    pub fn state_buffers(self) -> usize {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::Momentum { .. } | Optimizer::Nesterov { .. } => 1,
            Optimizer::Adam { .. } | Optimizer::AdamW { .. } => 2,
            Optimizer::Rmsprop { .. } => 3,
        }
    }

    /// Whether the rule needs the device's step count (Adam's bias corrections).
    pub(crate) fn counts_steps(self) -> bool {
        matches!(self, Optimizer::Adam { .. } | Optimizer::AdamW { .. })
    }

    /// Checks the constants and returns the host-owned part of the hyperparameter buffer.
    pub(crate) fn host_hyper(
        self,
        learning_rate: f32,
        weight_decay: f32,
        clipping: Clipping,
    ) -> Result<[f32; hyper::HOST_LEN]> {
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(Error::value(
                "learning rate",
                format!("must be finite and > 0, got {learning_rate}"),
            ));
        }
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(Error::value(
                "weight decay",
                format!("must be finite and >= 0, got {weight_decay}"),
            ));
        }
        let unit = |what: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(v)
            } else {
                Err(Error::value(what, format!("must be in [0, 1), got {v}")))
            }
        };
        let positive = |what: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(Error::value(
                    what,
                    format!("must be finite and > 0, got {v}"),
                ))
            }
        };
        let mut values = [0.0; hyper::HOST_LEN];
        values[hyper::LEARNING_RATE] = learning_rate;
        values[hyper::WEIGHT_DECAY] = weight_decay;
        if let Some(norm) = clipping.norm {
            values[hyper::CLIP_NORM] = positive("gradient clipping norm", norm)?;
        }
        if let Some(value) = clipping.value {
            values[hyper::CLIP_VALUE] = positive("gradient clipping value", value)?;
        }
        match self {
            Optimizer::Sgd => {}
            Optimizer::Momentum { momentum } | Optimizer::Nesterov { momentum } => {
                values[hyper::MOMENTUM] = unit("momentum", momentum)?
            }
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                epsilon,
            } => {
                values[hyper::BETA1] = unit("beta1", beta1)?;
                values[hyper::BETA2] = unit("beta2", beta2)?;
                values[hyper::EPSILON] = positive("epsilon", epsilon)?;
            }
            Optimizer::Rmsprop {
                alpha,
                epsilon,
                momentum,
                centered,
            } => {
                values[hyper::ALPHA] = unit("alpha", alpha)?;
                values[hyper::EPSILON] = positive("epsilon", epsilon)?;
                values[hyper::MOMENTUM] = unit("momentum", momentum)?;
                values[hyper::CENTERED] = if centered { 1.0 } else { 0.0 };
            }
        }
        Ok(values)
    }
}

impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Optimizer {
    type Err = Error;

    /// `sgd`, `momentum` or `nesterov` (μ 0.9), `adam`, `adamw` or `rmsprop` (PyTorch's defaults).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(Optimizer::Sgd),
            "momentum" => Ok(Optimizer::Momentum {
                momentum: DEFAULT_MOMENTUM,
            }),
            "nesterov" => Ok(Optimizer::Nesterov {
                momentum: DEFAULT_MOMENTUM,
            }),
            "adam" => Ok(Optimizer::ADAM),
            "adamw" => Ok(Optimizer::ADAMW),
            "rmsprop" => Ok(Optimizer::RMSPROP),
            other => Err(Error::value(
                "optimizer",
                format!(
                    "{}, expected one of sgd, momentum, nesterov, adam, adamw, rmsprop",
                    crate::error::quote(other)
                ),
            )),
        }
    }
}
