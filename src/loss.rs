//! Loss functions: the per-row value and gradient on the CPU beside the code the WGSL kernel switches on.
//!
//! `bce` and `ce` are fused with their output activation: they read the output layer's logits `z` and return
//! the gradient with respect to `z` directly (`σ(z) − y` and `softmax(z) − onehot(y)`, scaled), which is both
//! cheaper and numerically stable. `sse` and `mse` read the activated output `a` and return `∂L/∂a`.

use crate::activation::{sigmoid, Activation};
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The longest sum one GPU invocation runs: longer sums (matmul inner dimensions, bias-gradient rows, loss
/// rows) run as several dispatches over windows of this length, each continuing the last one's sums.
/// llvmpipe ends an invocation after 65535 loop iterations in total, which a 4-loop loss row must fit.
/// It lives here, below the backend, because the loss's accuracy rule depends on it too.
pub const REDUCTION_WINDOW: usize = 16384;

/// The training objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Loss {
    /// Sum of squared errors over the batch and outputs: `Σ (a − y)²` (the classic XOR tutorial's loss).
    Sse,
    /// Mean squared error over all elements: `Σ (a − y)² / (rows · cols)`.
    Mse,
    /// Binary cross-entropy of sigmoid outputs, mean over all elements, computed from logits.
    Bce,
    /// Softmax cross-entropy against integer class indices, mean over the batch, computed from logits.
    Ce,
}

impl Loss {
    /// The code the WGSL loss kernel switches on (`LOSS_*` in `shaders/loss.wgsl`).
    pub(crate) fn code(self) -> u32 {
        match self {
            Loss::Sse => 0,
            Loss::Mse => 1,
            Loss::Bce => 2,
            Loss::Ce => 3,
        }
    }

    /// The name used in summaries, the CLI and `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Sse => "sse",
            Loss::Mse => "mse",
            Loss::Bce => "bce",
            Loss::Ce => "ce",
        }
    }

    /// Every loss.
    pub const ALL: [Loss; 4] = [Loss::Sse, Loss::Mse, Loss::Bce, Loss::Ce];

    /// True when the loss kernel takes logits and returns the gradient w.r.t. them (activation fused in).
    pub fn is_fused(self) -> bool {
        matches!(self, Loss::Bce | Loss::Ce)
    }

    /// Target values per sample: one class index for `ce`, one value per output otherwise.
    pub fn target_width(self, outputs: usize) -> usize {
        if self == Loss::Ce {
            1
        } else {
            outputs
        }
    }

    /// Checks that the output layer's activation suits this loss.
    pub(crate) fn check_output(self, output: Activation) -> Result<()> {
        let required = match self {
            Loss::Bce => Activation::Sigmoid,
            Loss::Ce => Activation::Softmax,
            Loss::Sse | Loss::Mse => return Ok(()),
        };
        if output.code() != required.code() {
            return Err(Error::InvalidNetwork(format!(
                "loss `{}` needs a {} output layer, got {}",
                self.name(),
                required.name(),
                output.name()
            )));
        }
        Ok(())
    }

    /// Factor turning the sum of per-row losses into the loss value (1 for a sum, 1/count for a mean).
    pub fn scale(self, rows: usize, cols: usize) -> f32 {
        match self {
            Loss::Sse => 1.0,
            Loss::Mse | Loss::Bce => 1.0 / (rows * cols) as f32,
            Loss::Ce => 1.0 / rows as f32,
        }
    }

    /// Divisor turning a sum of per-row losses over `rows` samples into the reported mean loss: per sample
    /// for `sse` (its per-sample sum of squares) and `ce`, per element for `mse` and `bce`.
    pub fn mean_divisor(self, rows: usize, cols: usize) -> f32 {
        match self {
            Loss::Sse | Loss::Ce => rows as f32,
            Loss::Mse | Loss::Bce => (rows * cols) as f32,
        }
    }

    /// Divisor turning summed hits into an accuracy: `bce` scores each output, the others each row.
    pub fn hits_divisor(self, rows: usize, cols: usize) -> f32 {
        match self {
            Loss::Bce => (rows * cols) as f32,
            _ => rows as f32,
        }
    }

    /// Correct predictions in one row (see `loss_grad` in `shaders/loss.wgsl`, which follows the same rules):
    /// `ce` compares the first maximum logit with the class; `bce` counts outputs with `z > 0` matching
    /// `y > 0.5`; `sse`/`mse` do the same at 0.5 for one output and compare first maxima for several, in rows
    /// of at most [`REDUCTION_WINDOW`] outputs (wider rows count none).
    pub fn row_hits(self, prediction: &[f32], target: &[f32]) -> f32 {
        let first_max = |v: &[f32]| {
            let mut best = 0;
            for (j, &x) in v.iter().enumerate() {
                if x > v[best] {
                    best = j;
                }
            }
            best
        };
        let agree = |a: bool, b: bool| if a == b { 1.0 } else { 0.0 };
        match self {
            Loss::Ce => agree(first_max(prediction) == target[0] as usize, true),
            Loss::Bce => prediction
                .iter()
                .zip(target)
                .map(|(&z, &y)| agree(z > 0.0, y > 0.5))
                .sum(),
            Loss::Sse | Loss::Mse if prediction.len() == 1 => {
                agree(prediction[0] > 0.5, target[0] > 0.5)
            }
            Loss::Sse | Loss::Mse if prediction.len() > REDUCTION_WINDOW => 0.0,
            Loss::Sse | Loss::Mse => agree(first_max(prediction) == first_max(target), true),
        }
    }

    /// One row of the `loss_grad` op: writes the gradient into `grad` and returns the row's unscaled loss.
    /// `prediction` holds activated outputs for `sse`/`mse` and logits for `bce`/`ce`; `target` holds one
    /// value per output, or for `ce` the class index as a float. `rows` is the batch size (for the mean).
    pub fn row_loss_grad(
        self,
        prediction: &[f32],
        target: &[f32],
        grad: &mut [f32],
        rows: usize,
    ) -> f32 {
        let cols = prediction.len();
        let grad_scale = match self {
            Loss::Sse => 2.0,
            Loss::Mse => 2.0 / (rows * cols) as f32,
            Loss::Bce => 1.0 / (rows * cols) as f32,
            Loss::Ce => 1.0 / rows as f32,
        };
        match self {
            // L = Σ (a − y)²;  ∂L/∂a = 2 (a − y) (divided by rows · cols for the mean)
            Loss::Sse | Loss::Mse => {
                let mut sum = 0.0;
                for ((g, &a), &y) in grad.iter_mut().zip(prediction).zip(target) {
                    let diff = a - y;
                    sum += diff * diff;
                    *g = grad_scale * diff;
                }
                sum
            }
            // L = max(z, 0) − z·y + ln(1 + e^−|z|);  ∂L/∂z = σ(z) − y
            Loss::Bce => {
                let mut sum = 0.0;
                for ((g, &z), &y) in grad.iter_mut().zip(prediction).zip(target) {
                    sum += z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
                    *g = grad_scale * (sigmoid(z) - y);
                }
                sum
            }
            // L = logsumexp(z) − z_class;  ∂L/∂z = softmax(z) − onehot(class)
            Loss::Ce => {
                // An index outside the classes gives NaN, as the WGSL kernel does; models check targets first.
                let class = target[0] as usize;
                let Some(&z_class) = prediction.get(class) else {
                    grad.fill(f32::NAN);
                    return f32::NAN;
                };
                let max = prediction.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum_exp: f32 = prediction.iter().map(|&z| (z - max).exp()).sum();
                for (j, (g, &z)) in grad.iter_mut().zip(prediction).enumerate() {
                    let p = (z - max).exp() / sum_exp;
                    *g = grad_scale * (p - if j == class { 1.0 } else { 0.0 });
                }
                max + sum_exp.ln() - z_class
            }
        }
    }
}

/// Training options of softmax cross-entropy, as `torch.nn.CrossEntropyLoss(weight, label_smoothing)`
/// with the mean reduction: the batch's loss is `Σ_i row_i / Σ_i w_{y_i}` (see
/// [`crate::ops::CrossEntropyGrad`]). The default is the plain loss.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CrossEntropy {
    /// One weight per class, finite and ≥ 0, not all 0; `None` weighs every class 1.
    pub class_weights: Option<Vec<f32>>,
    /// ε in [0, 1): each target becomes `(1 − ε) · onehot + ε / classes`.
    pub label_smoothing: f32,
}

impl CrossEntropy {
    /// Whether this is the plain loss.
    pub fn is_plain(&self) -> bool {
        self.class_weights.is_none() && self.label_smoothing == 0.0
    }

    /// scikit-learn's `class_weight="balanced"`: `rows / (classes · count_c)` for class indices `targets`,
    /// so every class weighs as much in total. A class without rows is an error naming it.
    pub fn balanced(targets: &[f32], class_names: &[String]) -> Result<Vec<f32>> {
        let classes = class_names.len();
        let mut counts = vec![0usize; classes];
        for &t in targets {
            if let Some(c) = counts.get_mut(t as usize) {
                *c += 1;
            }
        }
        if let Some(c) = counts.iter().position(|&n| n == 0) {
            return Err(Error::value(
                "class-weight",
                format!(
                    "balanced weights need every class in the training rows, and class {} has none",
                    crate::error::quote(&class_names[c])
                ),
            ));
        }
        let rows = targets.len() as f64;
        Ok(counts
            .iter()
            .map(|&n| (rows / (classes as f64 * n as f64)) as f32)
            .collect())
    }

    /// Checks the options against a network of `classes` outputs.
    pub fn check(&self, classes: usize) -> Result<()> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::value(
                "label-smoothing",
                format!("must be in [0, 1), got {}", self.label_smoothing),
            ));
        }
        if let Some(weights) = &self.class_weights {
            if weights.len() != classes {
                return Err(Error::value(
                    "class-weight",
                    format!("{} weights for {classes} classes", weights.len()),
                ));
            }
            if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
                return Err(Error::value(
                    "class-weight",
                    format!("weights must be finite and at least 0, got {w}"),
                ));
            }
            if weights.iter().all(|&w| w == 0.0) {
                return Err(Error::value(
                    "class-weight",
                    "the weights are all 0, which leaves nothing to learn from",
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sse" => Ok(Loss::Sse),
            "mse" => Ok(Loss::Mse),
            "bce" => Ok(Loss::Bce),
            "ce" => Ok(Loss::Ce),
            other => Err(Error::value(
                "loss",
                format!(
                    "{}, expected one of sse, mse, bce, ce",
                    crate::error::quote(other)
                ),
            )),
        }
    }
}
