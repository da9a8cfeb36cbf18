//! Training and inference entry points of [`Model`].

use super::{Model, Plan};
use crate::backend::KernelId;
use crate::error::{Error, Result};
use crate::graph::Weighting;
use crate::loss::{CrossEntropy, Loss};
use crate::network::LayerParams;
use crate::optim::{Clipping, Optimizer};

/// Rows per forward pass when predicting before any training fixed a batch capacity.
const PREDICT_CHUNK: usize = 1024;

/// How [`Model::train`] and [`Model::train_epoch`] step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Gradient-descent steps [`Model::train`] takes (ignored by [`Model::train_epoch`]).
    pub iterations: usize,
    /// Rows per step; `None` is full-batch. A partial batch at the end of the data is kept as a smaller step.
    pub batch_size: Option<usize>,
    /// Learning rate `lr` of every step, finite and > 0 (default 0.01).
    pub learning_rate: f32,
    /// The update rule (plain SGD by default).
    pub optimizer: Optimizer,
    /// Weight decay: coupled (`weight_decay · w` added to every gradient), or decoupled for AdamW.
    pub weight_decay: f32,
    /// Gradient clipping before each update (none by default).
    pub clipping: Clipping,
}

impl TrainConfig {
    /// The training plan these settings run, with the model's cross-entropy `weighting` key.
    pub(super) fn plan(&self, weighting: Option<u32>) -> Plan {
        let clipping = self.clipping;
        let any = clipping.norm.is_some() || clipping.value.is_some();
        Plan::Train(
            self.optimizer.name(),
            clipping.norm.is_some(),
            any,
            weighting,
        )
    }
}

impl Default for TrainConfig {
    /// One full-batch SGD step at learning rate 0.01.
    fn default() -> Self {
        TrainConfig {
            iterations: 1,
            batch_size: None,
            learning_rate: 0.01,
            optimizer: Optimizer::Sgd,
            weight_decay: 0.0,
            clipping: Clipping::default(),
        }
    }
}

/// Mean loss per sample (per element for `mse` and `bce`) and the fraction of correct predictions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// Mean loss per sample (per element for `mse` and `bce`); in a training pass, each batch's is taken
    /// before its update.
    pub loss: f32,
    /// Meaningful for classification; see [`crate::Loss::row_hits`] for what counts as correct.
    pub accuracy: f32,
    /// The 1-based step (batch) of the pass whose loss was first NaN or infinite, if any.
    pub first_bad_step: Option<usize>,
}

/// The kernels of one epoch's steps, made before its first step (see [`Model::begin_epoch`]).
pub(super) struct EpochKernels {
    pub batch: usize,
    /// A step over a full batch.
    pub full: Vec<KernelId>,
    /// The epoch's last step (a partial batch when the rows do not divide evenly).
    pub last: Vec<KernelId>,
}

impl Model {
    /// Trains softmax cross-entropy as `torch.nn.CrossEntropyLoss(weight=class_weights,
    /// label_smoothing=…)` from the next step on; [`CrossEntropy::default`] is the plain loss again.
    /// Evaluation ([`Model::evaluate`], validation) keeps reporting the plain cross-entropy, so its
    /// figures compare across runs with different settings.
    pub fn set_cross_entropy(&mut self, options: &CrossEntropy) -> Result<()> {
        let classes = self.network.outputs();
        if options.is_plain() {
            self.weighting = None;
            self.host_class_weights = None;
            return Ok(());
        }
        if self.network.loss() != Loss::Ce {
            return Err(Error::value(
                "cross-entropy options",
                format!(
                    "class weights and label smoothing apply to the ce loss, and this network's is {}",
                    self.network.loss()
                ),
            ));
        }
        options.check(classes)?;
        let class_weights = match self.class_weights {
            Some(buffer) => buffer,
            None => {
                let buffer = self.backend.alloc("class weights", classes)?;
                self.class_weights = Some(buffer);
                buffer
            }
        };
        let ones = vec![1.0; classes];
        let weights = options.class_weights.as_deref().unwrap_or(&ones);
        self.backend.write(class_weights, 0, weights)?;
        self.host_class_weights = options.class_weights.clone();
        self.weighting = Some(Weighting {
            class_weights,
            label_smoothing: options.label_smoothing,
        });
        Ok(())
    }

    /// What the plans of training steps are keyed by besides the optimizer: the smoothing's bits when
    /// cross-entropy is weighted or smoothed.
    pub(super) fn weighting_key(&self) -> Option<u32> {
        self.weighting.map(|w| w.label_smoothing.to_bits())
    }

    /// Makes `config`'s optimizer, rates and clipping current on the device.
    pub(super) fn set_config(&mut self, config: &TrainConfig) -> Result<()> {
        self.set_optimizer(
            config.optimizer,
            config.learning_rate,
            config.weight_decay,
            config.clipping,
        )
    }

    /// Runs `config.iterations` gradient-descent steps on `inputs` (`[rows, inputs]` row-major) and `targets`
    /// (`[rows, outputs]`, or `[rows]` class indices for `ce`). Mini-batches are consecutive rows in order,
    /// wrapping around, and consecutive calls continue where the last one stopped.
    pub fn train(&mut self, inputs: &[f32], targets: &[f32], config: &TrainConfig) -> Result<()> {
        let rows = self.check_data(inputs, Some(targets))?;
        let batch = batch_rows(config, rows)?;
        self.set_config(config)?;
        self.ensure_capacity(batch)?;
        let (n_in, n_target) = (self.network.inputs(), self.target_width());
        let plan_key = config.plan(self.weighting_key());
        if batch == rows {
            // Full batch: the data goes up once and every step reuses it.
            self.upload(inputs, targets)?;
            let plan = self.plan(plan_key, rows)?;
            for _ in 0..config.iterations {
                self.run(&plan)?;
                self.count_step();
            }
            return Ok(());
        }
        for _ in 0..config.iterations {
            if self.cursor >= rows {
                self.cursor = 0;
            }
            let (start, end) = (self.cursor, (self.cursor + batch).min(rows));
            self.upload(
                &inputs[start * n_in..end * n_in],
                &targets[start * n_target..end * n_target],
            )?;
            let plan = self.plan(plan_key, end - start)?;
            self.run(&plan)?;
            self.count_step();
            self.cursor = end;
        }
        Ok(())
    }

    /// One optimizer step on exactly this batch, with `config`'s rule, learning rate, weight decay and
    /// clipping (its `iterations` and `batch_size` are not used): the building block of a training loop
    /// of one's own. The rule's state (momentum, Adam's moments and step count) carries over from step
    /// to step and from the other training methods; changing the rule after steps of one with state is an
    /// error until [`Model::reset_optimizer`].
    pub fn train_step(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
        config: &TrainConfig,
    ) -> Result<()> {
        let rows = self.check_data(inputs, Some(targets))?;
        self.set_config(config)?;
        self.ensure_capacity(rows)?;
        self.upload(inputs, targets)?;
        let plan = self.plan(config.plan(self.weighting_key()), rows)?;
        self.run(&plan)?;
        self.count_step();
        Ok(())
    }

    /// One pass over the data in `order` (row indices; `None` is file order), in batches of
    /// `config.batch_size`. The loss and hits are summed on the device and read once, at the end.
    pub fn train_epoch(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
        order: Option<&[usize]>,
        config: &TrainConfig,
    ) -> Result<EpochStats> {
        let rows = self.check_data(inputs, Some(targets))?;
        self.train_epoch_checked(rows, inputs, targets, order, config)
    }

    /// [`Model::train_epoch`] on data already checked (`rows` rows): the fit loop checks once, not per epoch.
    pub(crate) fn train_epoch_checked(
        &mut self,
        rows: usize,
        inputs: &[f32],
        targets: &[f32],
        order: Option<&[usize]>,
        config: &TrainConfig,
    ) -> Result<EpochStats> {
        let epoch = self.begin_epoch(rows, order, config, false)?;
        let batch = epoch.batch;
        if order.is_none() && batch == rows {
            self.upload(inputs, targets)?;
            self.enqueue_only(&epoch.last)?;
            self.count_step();
            return self.read_stats(rows);
        }
        let (n_in, n_target) = (self.network.inputs(), self.target_width());
        let (mut xs, mut ys) = std::mem::take(&mut self.scratch);
        for start in (0..rows).step_by(batch) {
            let end = (start + batch).min(rows);
            xs.clear();
            ys.clear();
            for position in start..end {
                let row = order.map_or(position, |o| o[position]);
                xs.extend_from_slice(&inputs[row * n_in..(row + 1) * n_in]);
                ys.extend_from_slice(&targets[row * n_target..(row + 1) * n_target]);
            }
            // The last step rides along with the read of the epoch's sums: one submission for both.
            let step = self.upload(&xs, &ys).and_then(|()| {
                if end == rows {
                    self.enqueue_only(&epoch.last)
                } else {
                    self.run(&epoch.full)
                }
            });
            if let Err(e) = step {
                self.scratch = (xs, ys);
                return Err(e);
            }
            self.count_step();
        }
        self.scratch = (xs, ys);
        self.read_stats(rows)
    }

    /// What both epoch loops do first: check the row order, fix the batch size, set the optimizer, size the
    /// workspace, zero the epoch's sums, and make every kernel of the epoch, so none is made inside it: a
    /// full step and the last (possibly partial) one. With `gather`, each step first gathers its batch from
    /// the training set held on the device.
    pub(super) fn begin_epoch(
        &mut self,
        rows: usize,
        order: Option<&[usize]>,
        config: &TrainConfig,
        gather: bool,
    ) -> Result<EpochKernels> {
        check_order(order, rows)?;
        let batch = batch_rows(config, rows)?;
        self.set_config(config)?;
        self.ensure_capacity(batch)?;
        self.reset_stats()?;
        let train = config.plan(self.weighting_key());
        let mut step_kernels = |n: usize| -> Result<Vec<KernelId>> {
            let mut kernels = if gather {
                self.plan(Plan::Gather, n)?
            } else {
                Vec::new()
            };
            kernels.extend(self.plan(train, n)?);
            Ok(kernels)
        };
        let full = step_kernels(batch)?;
        let last = match rows % batch {
            0 => full.clone(),
            partial => step_kernels(partial)?,
        };
        Ok(EpochKernels { batch, full, last })
    }

    /// One training step on this batch with every kernel timed (`(op name, microseconds)`, in order), or
    /// `None` where the device cannot time kernels. The step is a real one: parameters are updated.
    pub fn profile_step(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
        config: &TrainConfig,
    ) -> Result<Option<Vec<(&'static str, f64)>>> {
        let rows = self.check_data(inputs, Some(targets))?;
        self.set_config(config)?;
        self.ensure_capacity(rows)?;
        self.upload(inputs, targets)?;
        let plan = self.plan(config.plan(self.weighting_key()), rows)?;
        let times = self.backend.profile(&plan)?;
        self.count_step();
        Ok(times)
    }

    /// Mean loss and accuracy on `inputs`/`targets` with the current parameters; nothing is updated.
    pub fn evaluate(&mut self, inputs: &[f32], targets: &[f32]) -> Result<EpochStats> {
        let rows = self.check_data(inputs, Some(targets))?;
        self.evaluate_checked(rows, inputs, targets)
    }

    /// [`Model::evaluate`] on data already checked (`rows` rows).
    pub(crate) fn evaluate_checked(
        &mut self,
        rows: usize,
        inputs: &[f32],
        targets: &[f32],
    ) -> Result<EpochStats> {
        self.run_evaluation(Plan::Evaluate, rows, inputs, targets)?;
        self.read_stats(rows)
    }

    /// Runs `plan` (an evaluation) over `rows` checked rows in chunks of the batch capacity, the running
    /// sums zeroed first; nothing is read back.
    pub(super) fn run_evaluation(
        &mut self,
        plan: Plan,
        rows: usize,
        inputs: &[f32],
        targets: &[f32],
    ) -> Result<()> {
        let chunk = self.chunk_rows(rows);
        self.ensure_capacity(chunk)?;
        self.reset_stats()?;
        let (n_in, n_target) = (self.network.inputs(), self.target_width());
        for start in (0..rows).step_by(chunk) {
            let end = (start + chunk).min(rows);
            self.upload(
                &inputs[start * n_in..end * n_in],
                &targets[start * n_target..end * n_target],
            )?;
            let kernels = self.plan(plan, end - start)?;
            self.run(&kernels)?;
        }
        Ok(())
    }

    /// [`Model::evaluate`] and the confusion matrix of a classifier (`confusion[true][predicted]`, the
    /// classes being the outputs, or two for one output), counted on the device in the same pass and read
    /// back once: what per-epoch validation scores are computed from.
    pub fn evaluate_with_confusion(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
    ) -> Result<(EpochStats, Vec<Vec<usize>>)> {
        let rows = self.check_data(inputs, Some(targets))?;
        self.evaluate_with_confusion_checked(rows, inputs, targets)
    }

    /// [`Model::evaluate_with_confusion`] on data already checked (`rows` rows).
    pub(crate) fn evaluate_with_confusion_checked(
        &mut self,
        rows: usize,
        inputs: &[f32],
        targets: &[f32],
    ) -> Result<(EpochStats, Vec<Vec<usize>>)> {
        let classes = self.network.outputs().max(2);
        let counts = match self.confusion {
            Some(buffer) => buffer,
            None => {
                let buffer = self.backend.alloc("confusion counts", classes * classes)?;
                self.confusion = Some(buffer);
                buffer
            }
        };
        self.backend
            .write(counts, 0, &vec![0.0; classes * classes])?;
        self.run_evaluation(Plan::Score, rows, inputs, targets)?;
        let stats = self.read_stats(rows)?;
        let bits = self.backend.read(counts.region(classes * classes))?;
        let confusion = bits
            .chunks(classes)
            .map(|row| row.iter().map(|v| v.to_bits() as usize).collect())
            .collect();
        Ok((stats, confusion))
    }

    /// The loss on this batch and its gradient with respect to every parameter, without updating anything.
    pub fn gradients(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
    ) -> Result<(f32, Vec<LayerParams>)> {
        let rows = self.check_data(inputs, Some(targets))?;
        self.ensure_capacity(rows)?;
        self.upload(inputs, targets)?;
        let plan = self.plan(Plan::Gradients(self.weighting_key()), rows)?;
        self.run(&plan)?;
        let loss = self.backend.read(self.stats.region(1))?[0];
        Ok((loss, self.read_layers(self.param_grads, false)?))
    }

    /// Network outputs for `inputs` (`[rows, inputs]`): probabilities for sigmoid and softmax outputs.
    pub fn predict(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        let last = self.network.layers().len() - 1;
        let mut outputs = self.forward(inputs, &[last])?;
        Ok(outputs.pop().expect("one layer asked for"))
    }

    /// The output of every layer that does not work in place, after the in-place layers that follow it
    /// (for a dense network: each dense layer's output with its activation applied), one `[rows, width]`
    /// matrix each, in network order.
    pub fn layer_outputs(&mut self, inputs: &[f32]) -> Result<Vec<Vec<f32>>> {
        let layers = self.network.layers();
        let ends: Vec<usize> = (0..layers.len())
            .filter(|&i| !layers[i].kind().in_place())
            .map(|i| {
                (i + 1..layers.len())
                    .take_while(|&j| layers[j].kind().in_place())
                    .last()
                    .unwrap_or(i)
            })
            .collect();
        self.forward(inputs, &ends)
    }

    /// The forward pass over `inputs` in evaluation mode, reading back the outputs of `layers` (one read per
    /// layer and chunk, the first of which carries the pass itself).
    fn forward(&mut self, inputs: &[f32], layers: &[usize]) -> Result<Vec<Vec<f32>>> {
        let rows = self.check_data(inputs, None)?;
        let chunk = self.chunk_rows(rows);
        self.ensure_capacity(chunk)?;
        let n_in = self.network.inputs();
        let widths: Vec<usize> = layers
            .iter()
            .map(|&i| self.network.shapes()[i].size())
            .collect();
        let mut result: Vec<Vec<f32>> = widths
            .iter()
            .map(|w| Vec::with_capacity(rows * w))
            .collect();
        for start in (0..rows).step_by(chunk) {
            let end = (start + chunk).min(rows);
            let ws = self.workspace.as_ref().expect("capacity ensured");
            let input = ws.input;
            let outputs: Vec<_> = layers.iter().map(|&i| ws.outputs[i]).collect();
            self.backend
                .write(input, 0, &inputs[start * n_in..end * n_in])?;
            let plan = self.plan(Plan::Predict, end - start)?;
            self.enqueue_only(&plan)?;
            for ((out, &buffer), &width) in result.iter_mut().zip(&outputs).zip(&widths) {
                out.extend(self.backend.read(buffer.region((end - start) * width))?);
            }
        }
        Ok(result)
    }

    /// Rows per pass for inference: the training batch capacity, or up to [`PREDICT_CHUNK`] before training.
    fn chunk_rows(&self, rows: usize) -> usize {
        match &self.workspace {
            Some(ws) => ws.capacity,
            None => rows.min(PREDICT_CHUNK),
        }
    }
}

pub(super) fn batch_rows(config: &TrainConfig, rows: usize) -> Result<usize> {
    match config.batch_size {
        Some(0) => Err(Error::value("batch size", "must be at least 1, got 0")),
        Some(b) => Ok(b.min(rows)),
        None => Ok(rows),
    }
}

/// A row order must name `rows` rows, each below `rows`.
pub(super) fn check_order(order: Option<&[usize]>, rows: usize) -> Result<()> {
    match order {
        Some(order) if order.len() != rows || order.iter().any(|&i| i >= rows) => {
            Err(Error::shape(
                "row order",
                format!("{rows} indices below {rows}"),
                order.len(),
            ))
        }
        _ => Ok(()),
    }
}
