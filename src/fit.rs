//! The epoch loop: shuffled mini-batches, per-epoch metrics, validation, early stopping and a progress bar.

use crate::data::{Dataset, Task};
use crate::distributed::Collective;
use crate::error::{Error, Result};
use crate::loss::{CrossEntropy, Loss};
use crate::model::{Model, TrainConfig};
use crate::optim::{Clipping, Optimizer};
use crate::schedule::{LrSchedule, Scheduler};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// How [`fit`] trains.
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// Epochs in all, at least 1 (default 20); for a resumed run, the epochs already trained included.
    pub epochs: usize,
    /// Rows per step, at least 1 (default 32); an epoch's last batch is smaller when the rows do not divide
    /// evenly.
    pub batch_size: usize,
    /// Visit rows in a fresh seeded order each epoch; otherwise in file order.
    pub shuffle: bool,
    /// Seed of the generator that draws the shuffled orders (default 0).
    pub seed: u64,
    /// The base learning rate, which `schedule` moves epoch by epoch.
    pub learning_rate: f32,
    /// How the learning rate moves from epoch to epoch (constant by default).
    pub schedule: LrSchedule,
    /// The update rule (Adam with PyTorch's defaults by default).
    pub optimizer: Optimizer,
    /// Weight decay `wd`: coupled (`wd · w` added to every gradient), or decoupled for AdamW (default 0).
    pub weight_decay: f32,
    /// Gradient clipping before each update.
    pub clipping: Clipping,
    /// Class weights and label smoothing of a `ce` network's training loss (none by default).
    pub cross_entropy: CrossEntropy,
    /// Stop after this many epochs without a lower validation loss, and restore the best parameters.
    pub patience: Option<usize>,
    /// Epochs already trained (from a saved state, with the model's parameters and optimizer state
    /// restored): their shuffles and schedule are replayed, and training continues with the next epoch up
    /// to `epochs` in total. Empty for a fresh run.
    pub resume_from: Vec<EpochRecord>,
    /// With `patience` and `resume_from`: the parameters of the saved run's best epoch so far, when that
    /// is not its last (the model holds the last).
    pub resume_best: Option<Vec<crate::LayerParams>>,
    /// Draw a progress bar on stderr (never drawn when stderr is not a terminal).
    pub progress: bool,
}

impl Default for FitConfig {
    /// The CLI's defaults: 20 epochs of batch 32, shuffled with seed 0, Adam at 0.001.
    fn default() -> Self {
        FitConfig {
            epochs: 20,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            learning_rate: 0.001,
            schedule: LrSchedule::default(),
            optimizer: Optimizer::ADAM,
            weight_decay: 0.0,
            clipping: Clipping::default(),
            cross_entropy: CrossEntropy::default(),
            patience: None,
            resume_from: Vec::new(),
            resume_best: None,
            progress: false,
        }
    }
}

/// The most classes whose validation F1 is computed each epoch (its counts take `classes²` floats).
pub const MAX_SCORED_CLASSES: usize = 1024;

/// What one epoch measured. Accuracies are `None` for regression.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples, each measured before its batch's update.
    pub loss: f32,
    /// Classification: fraction of the training rows predicted correctly, each before its batch's update.
    pub accuracy: Option<f32>,
    /// Mean loss on the validation data after the epoch's last update (plain cross-entropy for `ce`, without
    /// class weights or label smoothing); `None` without validation data.
    pub val_loss: Option<f32>,
    /// Classification: fraction of the validation rows predicted correctly after the epoch.
    pub val_accuracy: Option<f32>,
    /// The learning rate the epoch ran at.
    pub learning_rate: f32,
    /// Classification: the macro-averaged F1 score on the validation data.
    #[serde(default)]
    pub val_f1: Option<f32>,
    /// Regression: R² on the validation data.
    #[serde(default)]
    pub val_r2: Option<f32>,
}

/// Every epoch's record, and where early stopping left the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// One record per epoch trained, in order; a resumed run's earlier epochs come first.
    pub epochs: Vec<EpochRecord>,
    /// The epoch whose parameters the model holds at the end when `patience` is set (lowest validation loss).
    pub best_epoch: Option<usize>,
    /// Whether `patience` ended training before `epochs` were done.
    pub stopped_early: bool,
}

impl History {
    /// The record of the last epoch trained; `None` when there is none.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }
}

/// Trains `model` on `train` for `config.epochs` epochs, evaluating on `validation` after each one.
/// `on_epoch` sees each record and the model as they are after the epoch (the progress bar is paused while
/// it runs); an error from it ends training. Training that produces a non-finite loss or non-finite
/// parameters stops with [`Error::Diverged`] naming the epoch and step, before `on_epoch` sees that epoch.
pub fn fit(
    model: &mut Model,
    train: &Dataset,
    validation: Option<&Dataset>,
    config: &FitConfig,
    on_epoch: impl FnMut(&EpochRecord, &mut Model) -> Result<()>,
) -> Result<History> {
    fit_with(model, train, validation, config, None, on_epoch)
}

/// [`fit`] as one rank of a data-parallel job (see [`crate::distributed`]): every rank calls it with the
/// same data and configuration, `config.batch_size` being each rank's share of a global batch of
/// `batch_size × ranks` rows. Rank 0's parameters are broadcast first; every rank ends with the same
/// parameters and the same history, its metrics summed over the ranks. Only the caller decides who prints
/// and saves (`on_epoch` runs on every rank).
pub fn fit_distributed(
    model: &mut Model,
    train: &Dataset,
    validation: Option<&Dataset>,
    config: &FitConfig,
    comm: &dyn Collective,
    on_epoch: impl FnMut(&EpochRecord, &mut Model) -> Result<()>,
) -> Result<History> {
    fit_with(model, train, validation, config, Some(comm), on_epoch)
}

fn fit_with(
    model: &mut Model,
    train: &Dataset,
    validation: Option<&Dataset>,
    config: &FitConfig,
    comm: Option<&dyn Collective>,
    mut on_epoch: impl FnMut(&EpochRecord, &mut Model) -> Result<()>,
) -> Result<History> {
    if config.epochs == 0 {
        return Err(Error::value("epochs", "must be at least 1, got 0"));
    }
    if config.batch_size == 0 {
        return Err(Error::value("batch size", "must be at least 1, got 0"));
    }
    let mut scheduler =
        Scheduler::new(config.schedule.clone(), config.learning_rate, config.epochs)?;
    if config.schedule.needs_validation() && validation.is_none() {
        return Err(Error::value(
            "schedule",
            "plateau follows the validation loss and needs validation data (a validation split)",
        ));
    }
    if config.patience.is_some() && validation.is_none() {
        return Err(Error::value(
            "patience",
            "early stopping needs validation data (a validation split)",
        ));
    }
    let (loss, outputs) = (model.network().loss(), model.network().outputs());
    let y = train.encode_targets(loss, outputs);
    let classify = train.task == Task::Classify;
    // The data does not change between epochs: check it once here rather than in every epoch.
    let rows = model.check_data(&train.features, Some(&y))?;
    let validation = match validation {
        Some(v) => {
            let vy = v.encode_targets(loss, outputs);
            let rows = model.check_data(&v.features, Some(&vy))?;
            Some((v, vy, rows))
        }
        None => None,
    };
    model.set_cross_entropy(&config.cross_entropy)?;
    let mut step = TrainConfig {
        iterations: 0,
        batch_size: Some(config.batch_size),
        learning_rate: config.learning_rate,
        optimizer: config.optimizer,
        weight_decay: config.weight_decay,
        clipping: config.clipping,
    };
    // Where the device has memory of its own (a GPU), the training set goes there once and each epoch
    // uploads only its row order; on the host it would only be a second copy.
    // Ranks slice their batches on the host.
    let held = comm.is_none()
        && !model.memory_limits().host_memory
        && model.hold_training_set(&train.features, &y)?;
    if let Some(comm) = comm {
        model.broadcast_parameters(comm)?;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train.rows()).collect();
    let mut history = History::default();
    let mut best: Option<(f32, usize, Vec<crate::LayerParams>)> = None;
    let done = resume(config, validation.is_some(), &mut scheduler)?;
    if config.patience.is_some() && done > 0 {
        best = Some(resumed_best(model, config)?);
    }
    // The row orders drawn so far: each epoch shuffles the previous epoch's order.
    for _ in 0..done {
        if config.shuffle {
            order.shuffle(&mut rng);
        }
    }
    history.epochs = config.resume_from.clone();
    let bar = progress_bar(config);
    bar.set_position(done as u64);
    for epoch in done + 1..=config.epochs {
        if config.shuffle {
            order.shuffle(&mut rng);
        }
        let order = config.shuffle.then_some(order.as_slice());
        step.learning_rate = scheduler.rate(epoch - 1);
        let stats = if let Some(comm) = comm {
            model.train_epoch_distributed(&train.features, &y, order, &step, comm)?
        } else if held {
            model.train_epoch_held(order, &step)?
        } else {
            model.train_epoch_checked(rows, &train.features, &y, order, &step)?
        };
        if let Some(bad) = stats.first_bad_step {
            bar.finish_and_clear();
            return Err(Error::Diverged(format!(
                "the loss became NaN or infinite in epoch {epoch}, step {bad}"
            )));
        }
        // The confusion counts take classes² floats on the device: past a thousand classes, no F1.
        let scored = classify && model.network().outputs() <= MAX_SCORED_CLASSES;
        let (val, val_score) = match (&validation, comm) {
            (Some((v, vy, _)), Some(comm)) => {
                let (stats, confusion) =
                    model.evaluate_distributed(&v.features, vy, scored, comm)?;
                let score = match confusion {
                    Some(c) => Some(crate::metrics::class_scores(&c, &v.class_names).1.f1 as f32),
                    None => (!classify)
                        .then(|| r_squared(model, v, stats.loss))
                        .flatten(),
                };
                (Some(stats), score)
            }
            (Some((v, vy, rows)), None) if scored => {
                let (stats, confusion) =
                    model.evaluate_with_confusion_checked(*rows, &v.features, vy)?;
                let names = &v.class_names;
                let f1 = crate::metrics::class_scores(&confusion, names).1.f1 as f32;
                (Some(stats), Some(f1))
            }
            (Some((v, vy, rows)), None) => {
                let stats = model.evaluate_checked(*rows, &v.features, vy)?;
                let r2 = (!classify)
                    .then(|| r_squared(model, v, stats.loss))
                    .flatten();
                (Some(stats), r2)
            }
            (None, _) => (None, None),
        };
        // Outputs that overflow on held-out rows are divergence too, not an epoch to keep or report.
        if let Some(v) = val.filter(|v| !v.loss.is_finite()) {
            bar.finish_and_clear();
            return Err(Error::Diverged(format!(
                "the validation loss became {} in epoch {epoch}",
                v.loss
            )));
        }
        let record = EpochRecord {
            epoch,
            loss: stats.loss,
            accuracy: classify.then_some(stats.accuracy),
            val_loss: val.map(|v| v.loss),
            val_accuracy: val.filter(|_| classify).map(|v| v.accuracy),
            learning_rate: step.learning_rate,
            val_f1: val_score.filter(|_| classify),
            val_r2: val_score.filter(|_| !classify),
        };
        if let Some(v) = val {
            scheduler.observe(v.loss);
        }
        history.epochs.push(record);
        bar.set_position(epoch as u64);
        bar.set_message(describe(&record));
        bar.suspend(|| on_epoch(&record, model))?;
        if let (Some(patience), Some(val_loss)) = (config.patience, record.val_loss) {
            if best.as_ref().is_none_or(|(b, _, _)| val_loss < *b) {
                best = Some((val_loss, epoch, model.parameters()?));
            } else if epoch - best.as_ref().map_or(0, |b| b.1) >= patience {
                history.stopped_early = true;
                break;
            }
        }
    }
    bar.finish_and_clear();
    model.release_training_set()?;
    // The last update can leave non-finite parameters without any loss showing it yet.
    if model
        .parameters()?
        .iter()
        .any(|l| l.weights.iter().chain(&l.bias).any(|v| !v.is_finite()))
    {
        let epoch = history.epochs.len();
        return Err(Error::Diverged(format!(
            "the parameters are NaN or infinite after epoch {epoch}, its last step"
        )));
    }
    if let Some((_, epoch, params)) = best {
        if epoch != history.epochs.len() {
            model.set_parameters(&params)?;
        }
        history.best_epoch = Some(epoch);
    }
    Ok(history)
}

/// Checks [`FitConfig::resume_from`] against the run and replays its epochs into the scheduler; returns
/// the epochs done.
fn resume(config: &FitConfig, validation: bool, scheduler: &mut Scheduler) -> Result<usize> {
    let done = config.resume_from.len();
    if done == 0 {
        return Ok(0);
    }
    if done >= config.epochs {
        return Err(Error::value(
            "epochs",
            format!(
                "the saved run has trained {done} epochs already; ask for more in total to continue it"
            ),
        ));
    }
    for (i, record) in config.resume_from.iter().enumerate() {
        if record.epoch != i + 1 {
            return Err(Error::value(
                "saved history",
                format!("record {} is of epoch {}", i + 1, record.epoch),
            ));
        }
        match (record.val_loss, validation) {
            (Some(v), true) => scheduler.observe(v),
            (None, false) => {}
            _ => {
                return Err(Error::value(
                    "saved history",
                    "its validation losses do not match whether this run has validation data",
                ))
            }
        }
    }
    Ok(done)
}

/// R² of a regression model's predictions on `data` from its mean loss there: `1 − SSE / SST`, the sum of
/// squared errors being the loss summed over the rows for `mse` and `sse` (any other loss: `None`).
fn r_squared(model: &Model, data: &Dataset, loss: f32) -> Option<f32> {
    let network = model.network();
    let (kind, outputs) = (network.loss(), network.outputs());
    if !matches!(kind, Loss::Mse | Loss::Sse) || outputs != 1 {
        return None;
    }
    let sse = f64::from(loss) * f64::from(kind.mean_divisor(data.rows(), outputs));
    let mean = data.targets.iter().map(|&y| f64::from(y)).sum::<f64>() / data.rows() as f64;
    let sst: f64 = data
        .targets
        .iter()
        .map(|&y| (f64::from(y) - mean).powi(2))
        .sum();
    Some(if sst > 0.0 {
        (1.0 - sse / sst) as f32
    } else if sse == 0.0 {
        1.0
    } else {
        0.0
    })
}

/// Early stopping's best epoch in `history` and its validation loss: the first of the lowest, as the epoch
/// loop keeps it. `None` for an empty history.
pub fn best_so_far(history: &[EpochRecord]) -> Option<(f32, usize)> {
    let mut best: Option<(f32, usize)> = None;
    for record in history {
        let loss = record.val_loss.unwrap_or(f32::INFINITY);
        if best.is_none_or(|(b, _)| loss < b) {
            best = Some((loss, record.epoch));
        }
    }
    best
}

/// Early stopping's best epoch of a resumed run (the first lowest validation loss, as the loop keeps
/// it) with its parameters: the model's when it was the last epoch, else [`FitConfig::resume_best`].
fn resumed_best(
    model: &mut Model,
    config: &FitConfig,
) -> Result<(f32, usize, Vec<crate::LayerParams>)> {
    let history = &config.resume_from;
    let best = best_so_far(history).unwrap_or((f32::INFINITY, 0));
    let done = history.len();
    let patience = config.patience.unwrap_or(usize::MAX);
    if done - best.1 >= patience {
        return Err(Error::value(
            "patience",
            format!(
                "the saved run stopped early after epoch {done} (no better validation loss since epoch {}); there is nothing to continue",
                best.1
            ),
        ));
    }
    let params = if best.1 == done {
        model.parameters()?
    } else {
        config.resume_best.clone().ok_or_else(|| {
            Error::value(
                "patience",
                format!(
                    "the saved run's best parameters (epoch {}) are not given",
                    best.1
                ),
            )
        })?
    };
    Ok((best.0, best.1, params))
}

/// `loss=… acc=… val_loss=… val_acc=…` for the progress bar and logs.
pub fn describe(record: &EpochRecord) -> String {
    let mut text = format!("loss={:.4}", record.loss);
    if let Some(a) = record.accuracy {
        text += &format!(" accuracy={a:.4}");
    }
    if let Some(v) = record.val_loss {
        text += &format!(" val_loss={v:.4}");
    }
    if let Some(a) = record.val_accuracy {
        text += &format!(" val_accuracy={a:.4}");
    }
    if let Some(f1) = record.val_f1 {
        text += &format!(" val_f1={f1:.4}");
    }
    if let Some(r2) = record.val_r2 {
        text += &format!(" val_r2={r2:.4}");
    }
    text += &format!(" lr={:.3e}", record.learning_rate);
    text
}

fn progress_bar(config: &FitConfig) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    // indicatif draws nothing when stderr is not a terminal.
    let bar =
        ProgressBar::with_draw_target(Some(config.epochs as u64), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("epoch {pos}/{len} [{bar:25}] {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar
}
