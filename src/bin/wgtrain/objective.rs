//! The output layer and the loss a run trains: chosen from the target and the flags, with cross-entropy's
//! class weights and label smoothing; and the loss measured in the target's own units afterwards.

use crate::train::invalid;
use crate::{OutputChoice, TrainArgs};
use std::path::Path;
use wgtrain::data::{Dataset, Standardizer, Task};
use wgtrain::error::quote;
use wgtrain::{Activation, CrossEntropy, Error, Loss, Model, Result};

/// Output activation, width and loss from the data and the flags (see the README's CLI section).
/// With `--class-weight` or `--label-smoothing`, a two-class target gets a two-unit softmax output (they
/// are options of the ce loss).
pub fn output_layer(train: &Dataset, args: &TrainArgs) -> Result<(Activation, usize, Loss)> {
    let (output, loss) = (args.output, args.loss);
    let classes = train.class_names.len();
    let weighted = args.class_weight.is_some() || args.label_smoothing.is_some();
    let activation = match (output, train.task) {
        (OutputChoice::Auto, Task::Regress) | (OutputChoice::Linear, _) => Activation::Linear,
        (OutputChoice::Auto, Task::Classify) if classes >= 3 || weighted => Activation::Softmax,
        (OutputChoice::Auto, Task::Classify) | (OutputChoice::Sigmoid, _) => Activation::Sigmoid,
        (OutputChoice::Softmax, _) => Activation::Softmax,
    };
    let width = match train.task {
        Task::Regress => 1,
        Task::Classify if classes == 2 && activation != Activation::Softmax => 1,
        Task::Classify => classes,
    };
    if train.task == Task::Classify && activation == Activation::Sigmoid && classes > 2 {
        return Err(invalid(
            "--output",
            format!(
                "sigmoid is one unit for two classes, but target `{}` has {classes} classes (use --output softmax)",
                train.target_name
            ),
        ));
    }
    if train.task == Task::Regress && activation == Activation::Softmax {
        return Err(invalid(
            "--output",
            "softmax needs a classification target".into(),
        ));
    }
    let loss = loss.fixed().unwrap_or(match activation {
        Activation::Softmax => Loss::Ce,
        Activation::Sigmoid => Loss::Bce,
        _ => Loss::Mse,
    });
    Ok((activation, width, loss))
}

/// `--class-weight balanced|W,W,…|NAME=W,…` and `--label-smoothing F` for a network trained with `loss`.
/// Balanced weights come from the training split's class counts; a list gives one weight per class in
/// the classes' order, and `NAME=W` pairs name classes (the others weigh 1).
pub fn cross_entropy(args: &TrainArgs, train: &Dataset, loss: Loss) -> Result<CrossEntropy> {
    let label_smoothing = args.label_smoothing.unwrap_or(0.0);
    let class_weights = match args.class_weight.as_deref() {
        None => None,
        Some("balanced") => Some(CrossEntropy::balanced(&train.targets, &train.class_names)?),
        Some(text) => Some(parse_weights(text, &train.class_names)?),
    };
    let options = CrossEntropy {
        class_weights,
        label_smoothing,
    };
    if options.is_plain() {
        return Ok(options);
    }
    let flag = if args.class_weight.is_some() {
        "--class-weight"
    } else {
        "--label-smoothing"
    };
    if train.task != Task::Classify || loss != Loss::Ce {
        return Err(invalid(
            flag,
            format!(
                "applies to classification with the ce loss (a softmax output), and this run trains {loss}"
            ),
        ));
    }
    options
        .check(train.class_names.len())
        .map_err(|e| match e {
            wgtrain::Error::InvalidValue { message, .. } => invalid(flag, message),
            other => other,
        })?;
    Ok(options)
}

fn parse_weights(text: &str, classes: &[String]) -> Result<Vec<f32>> {
    let bad = |message: String| invalid("--class-weight", message);
    let number = |s: &str| -> Result<f32> {
        s.trim()
            .parse::<f32>()
            .ok()
            .filter(|w| w.is_finite() && *w >= 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "{} is not a weight (a finite number ≥ 0)",
                    quote(s.trim())
                ))
            })
    };
    if !text.contains('=') {
        let weights = text.split(',').map(number).collect::<Result<Vec<_>>>()?;
        if weights.len() != classes.len() {
            return Err(bad(format!(
                "{} weights for {} classes ({}, in this order), or name them: CLASS=W,…",
                weights.len(),
                classes.len(),
                classes
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        return Ok(weights);
    }
    let mut weights = vec![1.0; classes.len()];
    for pair in text.split(',') {
        let (name, weight) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("{} is not CLASS=W", quote(pair))))?;
        let class = classes
            .iter()
            .position(|c| c == name.trim())
            .ok_or_else(|| {
                bad(format!(
                    "no class {} (classes: {})",
                    quote(name.trim()),
                    classes
                        .iter()
                        .map(|c| quote(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        weights[class] = number(weight)?;
    }
    Ok(weights)
}

/// A non-finite loss on held-out data means outputs that overflowed: an error, not metrics of NaN.
pub fn finite_loss(loss: f32, path: &Path) -> Result<()> {
    if loss.is_finite() {
        return Ok(());
    }
    Err(Error::Format {
        path: path.display().to_string(),
        message: format!(
            "the model's loss on this data is {loss}: its outputs overflow (inputs far outside the training data?)"
        ),
    })
}

/// The mean squared error of `model` on `data`, in the target's own units: with `target_scale` the
/// targets and predictions are standardised, and the error is scaled back by the variance.
pub fn mse(model: &mut Model, data: &Dataset, target_scale: Option<&Standardizer>) -> Result<f32> {
    let predictions = model.predict(&data.features)?;
    let sum: f64 = predictions
        .iter()
        .zip(&data.targets)
        .map(|(p, y)| f64::from(p - y).powi(2))
        .sum();
    let variance = target_scale.map_or(1.0, |s| f64::from(s.std[0]).powi(2));
    Ok((sum / data.rows() as f64 * variance) as f32)
}
