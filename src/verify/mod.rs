//! `wgtrain verify`: proof on the user's own adapter that it computes what the CPU reference computes.
//!
//! 1. Op parity: small networks covering every layer kind, activation, loss, optimizer and clipping, plus
//!    edge shapes (odd sizes, a last short batch, sums long enough to run in windows), train on the CPU
//!    reference while every op is replayed on the adapter from the same inputs (`lockstep`); every op the
//!    engine has must be met.
//! 2. Gradients: `Model::gradients` on the adapter against central differences of its own loss.
//! 3. Training: a small MLP and a small CNN trained on the adapter and on the CPU from the same start,
//!    parameters compared after every step.

mod lockstep;
mod runs;
mod scenarios;

use crate::backend::Backend;
use crate::device::Device;
use crate::error::Result;
pub use lockstep::Lockstep;

/// `|actual − expected| ≤ abs · scale + rel · |expected|`, `scale` the largest magnitude the op wrote (at
/// least 1), so sums of large values are not held to the tolerance of small ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// The absolute part, multiplied by `scale`.
    pub abs: f32,
    /// The relative part, multiplied by `|expected|`.
    pub rel: f32,
}

/// Copies and selections (gathers, masks, max pooling, counts): bit for bit.
pub const EXACT: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };
/// Elementwise maths: GPU `exp`, `tanh` and `sqrt` may differ from the host's by a few ULP.
pub const ELEMENTWISE: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-4,
};
/// Dot products (matrix products, convolutions) summed in another order.
pub const PRODUCT: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};
/// Long sums (losses, bias and channel gradients, batch statistics, the gradient norm), in windows of
/// another order.
pub const REDUCTION: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};

impl Tolerance {
    /// The tolerance an op's outputs are held to, by its entry point.
    pub fn of(op: &str) -> Tolerance {
        const EXACT_OPS: [&str; 7] = [
            "gather_rows",
            "advance_cursor",
            "dropout",
            "transpose_batched",
            "im2col",
            "max_pool",
            "confusion_counts",
        ];
        const REDUCTION_OPS: [&str; 7] = [
            "loss_sum",
            "class_weight_sum",
            "bias_grad",
            "channel_sum",
            "batch_norm_stats",
            "batch_norm_backward_sums",
            "grad_norm_scale",
        ];
        if EXACT_OPS.contains(&op) {
            EXACT
        } else if REDUCTION_OPS.contains(&op) {
            REDUCTION
        } else if op.starts_with("matmul") || op.starts_with("conv2d") || op == "col2im" {
            PRODUCT
        } else {
            ELEMENTWISE
        }
    }

    /// Whether `actual` is within the tolerance of `expected` at `scale`; a NaN must meet a NaN, an
    /// infinity the same infinity.
    pub fn allows(&self, expected: f32, actual: f32, scale: f32) -> bool {
        if expected.is_nan() || actual.is_nan() {
            return expected.is_nan() && actual.is_nan();
        }
        if expected.is_infinite() || actual.is_infinite() {
            return expected == actual;
        }
        (actual - expected).abs() <= self.abs * scale + self.rel * expected.abs()
    }

    /// The tolerance at `scale` as the report prints it: `exact`, or `abs·scale + rel·|x|`.
    pub fn describe(&self, scale: f32) -> String {
        if self.abs == 0.0 && self.rel == 0.0 {
            "exact".into()
        } else {
            format!("{:.0e} + {:.0e}·|x|", self.abs * scale, self.rel)
        }
    }
}

/// The worst difference found by one check and whether every compared value held.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The largest `|actual − expected|` over the values compared; infinite when one side alone was NaN.
    pub max_abs_error: f32,
    /// What the values are held to.
    pub tolerance: Tolerance,
    /// The largest `scale` the tolerance was applied with.
    pub scale: f32,
    /// Whether every value compared was within the tolerance.
    pub ok: bool,
    /// Values compared.
    pub values: usize,
}

impl Check {
    /// A check against `tolerance` at `scale` that has compared nothing yet (and so holds).
    pub fn new(tolerance: Tolerance, scale: f32) -> Check {
        Check {
            max_abs_error: 0.0,
            tolerance,
            scale,
            ok: true,
            values: 0,
        }
    }

    /// Records one comparison; a NaN on one side only counts as an infinite error.
    pub fn compare(&mut self, expected: f32, actual: f32, allowed: bool) {
        let error = if expected.is_nan() != actual.is_nan() {
            f32::INFINITY
        } else if expected == actual || expected.is_nan() {
            0.0
        } else {
            (actual - expected).abs()
        };
        self.max_abs_error = self.max_abs_error.max(error);
        self.ok &= allowed;
        self.values += 1;
    }

    /// Folds in another run of the same op and shape; the table shows the widest tolerance met.
    pub fn merge(&mut self, other: &Check) {
        self.max_abs_error = self.max_abs_error.max(other.max_abs_error);
        self.scale = self.scale.max(other.scale);
        self.ok &= other.ok;
        self.values += other.values;
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Row {
    /// `op`, `gradient` or `training`.
    pub kind: &'static str,
    /// The op's entry point, or the network checked.
    pub name: String,
    /// What was checked (the shapes met, or the steps or parameters run), or the shape that failed.
    pub shapes: String,
    /// The largest absolute difference found; NaN for an op no check exercised.
    pub max_abs_error: f32,
    /// What the values were held to, as printed (`-` for an op no check exercised).
    pub tolerance: String,
    /// Whether the check passed (false for an op no check exercised).
    pub ok: bool,
}

/// How much to run: `quick` leaves out the edge shapes whose sums run in windows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Leave out the edge shapes whose sums run in windows (a faster run).
    pub quick: bool,
}

/// Every check on `device`, against the CPU reference; with the adapter the checks ran on.
pub fn run(device: Device, options: Options) -> Result<(crate::DeviceInfo, Vec<Row>)> {
    let backend = device.open()?;
    let info = backend.info().clone();
    let mut rows = op_parity(Box::new(crate::CpuBackend::new()), backend, options)?;
    rows.extend(runs::gradient_checks(device)?);
    rows.extend(runs::training_runs(device)?);
    Ok((info, rows))
}

/// Op parity of `device` against `reference` over every scenario; a row per op and shape, and a failing row
/// for each op of the engine no scenario met.
pub fn op_parity(
    reference: Box<dyn Backend>,
    device: Box<dyn Backend>,
    options: Options,
) -> Result<Vec<Row>> {
    let found = scenarios::run_all(Lockstep::new(reference, device), options)?;
    // One row per op: its shapes merged, the failing one named when one fails.
    let mut rows: Vec<Row> = Vec::new();
    let mut names: Vec<&String> = found.keys().map(|(name, _)| name).collect();
    names.dedup();
    for name in names {
        let shapes: Vec<(&String, &Check)> = found
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, shape), check)| (shape, check))
            .collect();
        let mut merged = shapes[0].1.clone();
        for (_, check) in &shapes[1..] {
            merged.merge(check);
        }
        let described = match shapes.iter().find(|(_, c)| !c.ok) {
            Some((shape, _)) => {
                let shape = if shape.is_empty() {
                    "-"
                } else {
                    shape.as_str()
                };
                match shapes.len() {
                    1 => format!("fails at {shape}"),
                    n => format!("fails at {shape} (one of {n} shapes)"),
                }
            }
            None => {
                let largest = shapes.iter().max_by_key(|(_, c)| c.values).map(|(s, _)| *s);
                let largest = largest.filter(|s| !s.is_empty()).map_or("-", |s| s);
                match shapes.len() {
                    1 => largest.to_string(),
                    n => format!("{n} shapes, largest: {largest}"),
                }
            }
        };
        rows.push(Row {
            kind: "op",
            name: name.clone(),
            shapes: described,
            max_abs_error: merged.max_abs_error,
            tolerance: merged.tolerance.describe(merged.scale),
            ok: merged.ok,
        });
    }
    for (entry, _) in crate::ops::ENTRY_POINTS {
        if !rows.iter().any(|r| r.name == *entry) {
            rows.push(Row {
                kind: "op",
                name: entry.to_string(),
                shapes: "not exercised by any check".into(),
                max_abs_error: f32::NAN,
                tolerance: "-".into(),
                ok: false,
            });
        }
    }
    Ok(rows)
}
