//! Whole-model checks on the adapter: gradients against finite differences, and short training runs step
//! by step against the CPU reference.

use super::Row;
use crate::device::Device;
use crate::error::Result;
use crate::layers::Shape;
use crate::loss::Loss;
use crate::network::{LayerParams, Network};
use crate::optim::Optimizer;
use crate::{Model, TrainConfig};
use rand::{Rng, SeedableRng};

/// Central-difference step: large enough for f32 round-off in the loss, small enough to stay clear of kinks.
const STEP: f32 = 1e-3;
/// Allowed `|numeric − analytic| / max(|numeric|, |analytic|, FLOOR)` per parameter.
const GRADIENT_REL: f32 = 1e-2;
const GRADIENT_FLOOR: f32 = 5e-2;
/// Parameters after each training step: `abs + rel · |cpu|`; rounding differences compound over steps.
const TRAINING_ABS: f32 = 1e-5;
const TRAINING_REL: f32 = 1e-3;
const TRAINING_STEPS: usize = 12;

fn uniform(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

fn flatten(layers: &[LayerParams]) -> Vec<f32> {
    LayerParams::flatten(layers, false)
}

fn unflatten(flat: &[f32], like: &[LayerParams]) -> Vec<LayerParams> {
    LayerParams::unflatten(flat, like, false)
}

/// The small networks both checks use: an MLP and a CNN, smooth (tanh, average pooling) so that finite
/// differences never step across a kink.
fn networks() -> Result<Vec<(&'static str, Network)>> {
    let image = Shape::Image {
        channels: 1,
        height: 6,
        width: 5,
    };
    Ok(vec![
        (
            "mlp 4-6-5-3 tanh sigmoid, ce",
            Network::builder_for(Shape::Flat(4))
                .spec("dense:6,tanh,dense:5,sigmoid,dense:3,softmax")?
                .build(Loss::Ce)?,
        ),
        (
            "cnn 1x6x5 conv3 pad1, avgpool2, ce",
            Network::builder_for(image)
                .spec("conv:3:3:pad=1,tanh,avgpool:2,flatten,dense:3,softmax")?
                .build(Loss::Ce)?,
        ),
    ])
}

fn class_targets(rows: usize, classes: usize) -> Vec<f32> {
    (0..rows).map(|i| (i % classes) as f32).collect()
}

/// `Model::gradients` on `device` against central differences of its own loss, for every parameter.
pub fn gradient_checks(device: Device) -> Result<Vec<Row>> {
    let rows = 5;
    let mut out = Vec::new();
    for (name, network) in networks()? {
        let x = uniform(3, rows * network.inputs(), -1.5, 1.5);
        let y = class_targets(rows, network.outputs());
        let mut model = Model::new(network, device, 5)?;
        let mut start = model.parameters()?;
        for (i, layer) in start.iter_mut().enumerate() {
            layer.bias = uniform(20 + i as u64, layer.bias.len(), -0.3, 0.3);
        }
        model.set_parameters(&start)?;
        let analytic = flatten(&model.gradients(&x, &y)?.1);
        let base = flatten(&start);
        let (mut worst, mut worst_rel) = (0.0f32, 0.0f32);
        for i in 0..base.len() {
            let mut loss_at = |delta: f32| -> Result<f32> {
                let mut p = base.clone();
                p[i] += delta;
                model.set_parameters(&unflatten(&p, &start))?;
                Ok(model.gradients(&x, &y)?.0)
            };
            let numeric = (loss_at(STEP)? - loss_at(-STEP)?) / (2.0 * STEP);
            let error = (analytic[i] - numeric).abs();
            let rel = error / analytic[i].abs().max(numeric.abs()).max(GRADIENT_FLOOR);
            // A NaN on either side is the worst there is.
            worst_rel = if rel.is_nan() {
                f32::INFINITY
            } else {
                worst_rel.max(rel)
            };
            worst = worst.max(error);
        }
        // A zero gradient would make the check vacuous.
        let norm = analytic.iter().map(|g| g * g).sum::<f32>().sqrt();
        out.push(Row {
            kind: "gradient",
            name: name.into(),
            shapes: format!("{rows} rows, {} parameters", base.len()),
            max_abs_error: worst,
            tolerance: format!("{GRADIENT_REL:.0e} relative (floor {GRADIENT_FLOOR:.0e})"),
            ok: worst_rel <= GRADIENT_REL && norm > 1e-3,
        });
    }
    Ok(out)
}

/// Each network trained with Adam for [`TRAINING_STEPS`] steps on `device` and on the CPU from the same
/// start, the parameters compared after every step.
pub fn training_runs(device: Device) -> Result<Vec<Row>> {
    let (rows, batch) = (60, 16);
    let mut out = Vec::new();
    for (name, network) in networks()? {
        let x = uniform(7, rows * network.inputs(), -1.0, 1.0);
        let y = class_targets(rows, network.outputs());
        let mut reference = Model::new(network.clone(), Device::Cpu, 9)?;
        let mut model = Model::new(network, device, 9)?;
        model.set_parameters(&reference.parameters()?)?;
        let config = TrainConfig {
            iterations: 1,
            batch_size: Some(batch),
            learning_rate: 0.01,
            optimizer: Optimizer::ADAM,
            ..TrainConfig::default()
        };
        let (mut worst, mut ok) = (0.0f32, true);
        for _ in 0..TRAINING_STEPS {
            reference.train(&x, &y, &config)?;
            model.train(&x, &y, &config)?;
            let expected = flatten(&reference.parameters()?);
            let actual = flatten(&model.parameters()?);
            for (&e, &a) in expected.iter().zip(&actual) {
                let error = (a - e).abs();
                worst = if error.is_nan() {
                    f32::INFINITY
                } else {
                    worst.max(error)
                };
                ok &= error <= TRAINING_ABS + TRAINING_REL * e.abs();
            }
        }
        out.push(Row {
            kind: "training",
            name: name.into(),
            shapes: format!("{TRAINING_STEPS} Adam steps of {batch} rows (a short last batch)"),
            max_abs_error: worst,
            tolerance: format!("{TRAINING_ABS:.0e} + {TRAINING_REL:.0e}·|x|"),
            ok,
        });
    }
    Ok(out)
}
