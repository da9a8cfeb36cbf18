//! A network bound to a backend: parameters, gradients and activations live in backend buffers allocated once
//! per (network, batch capacity); a training step is a prepared list of ops enqueued and submitted once.

use crate::backend::{Backend, BufferId, Counters, DeviceInfo, KernelId};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::graph::{StepBuffers, Workspace};
use crate::loss::Loss;
use crate::network::{LayerParams, LayerSlots, Network};
use std::collections::HashMap;

/// Rows per forward pass when predicting before any training fixed a batch capacity.
const PREDICT_CHUNK: usize = 1024;

/// How [`Model::train`] walks the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Gradient-descent steps to take.
    pub iterations: usize,
    /// Rows per step; `None` is full-batch. Batches are consecutive rows in order, wrapping around; a partial
    /// batch at the end of the data is kept as a smaller step.
    pub batch_size: Option<usize>,
    pub learning_rate: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Plan {
    /// Forward, loss, backward and the update.
    Train,
    /// Forward, loss and backward only: leaves the gradients for [`Model::gradients`].
    Gradients,
    /// Forward with the output activated.
    Predict,
}

/// A network, its parameters and the backend it trains on.
pub struct Model {
    network: Network,
    backend: Box<dyn Backend>,
    slots: Vec<LayerSlots>,
    param_len: usize,
    params: BufferId,
    param_grads: BufferId,
    learning_rate: BufferId,
    learning_rate_value: Option<f32>,
    loss_value: BufferId,
    steps: u64,
    workspace: Option<Workspace>,
    plans: HashMap<(Plan, usize), Vec<KernelId>>,
    /// Row where the next mini-batch starts, so consecutive `train` calls continue through the data.
    cursor: usize,
}

impl Model {
    /// Opens `device` and initialises parameters from `seed` (see [`Network::init_parameters`]).
    pub fn new(network: Network, device: Device, seed: u64) -> Result<Model> {
        Model::with_backend(network, device.open()?, seed)
    }

    /// Uses an already opened backend.
    pub fn with_backend(
        network: Network,
        mut backend: Box<dyn Backend>,
        seed: u64,
    ) -> Result<Model> {
        let (slots, param_len) = network.param_slots();
        let params = backend.alloc("parameters", param_len)?;
        let param_grads = backend.alloc("parameter gradients", param_len)?;
        let learning_rate = backend.alloc("learning rate", 1)?;
        let loss_value = backend.alloc("loss", 1)?;
        let mut model = Model {
            network,
            backend,
            slots,
            param_len,
            params,
            param_grads,
            learning_rate,
            learning_rate_value: None,
            loss_value,
            steps: 0,
            workspace: None,
            plans: HashMap::new(),
            cursor: 0,
        };
        let initial = model.network.init_parameters(seed);
        model.set_parameters(&initial)?;
        Ok(model)
    }

    /// Gives the backend back, e.g. to build another model on an already opened device.
    pub fn into_backend(self) -> Box<dyn Backend> {
        self.backend
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The backend and adapter this model runs on.
    pub fn device_info(&self) -> &DeviceInfo {
        self.backend.info()
    }

    /// Submits, readbacks and allocations the backend has counted.
    pub fn counters(&self) -> Counters {
        self.backend.counters()
    }

    /// Training steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The current parameters, one entry per layer (weights `[inputs, units]` row-major).
    pub fn parameters(&mut self) -> Result<Vec<LayerParams>> {
        self.read_layers(self.params)
    }

    /// Splits a flat parameter-shaped buffer into layers.
    fn read_layers(&mut self, buffer: BufferId) -> Result<Vec<LayerParams>> {
        let flat = self.backend.read(buffer.region(self.param_len))?;
        Ok(self
            .slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let (w, b) = self.network.layer_parameter_count(i);
                LayerParams {
                    weights: flat[slot.weights..slot.weights + w].to_vec(),
                    bias: flat[slot.bias..slot.bias + b].to_vec(),
                }
            })
            .collect())
    }

    /// Replaces every parameter; shapes must match the network.
    pub fn set_parameters(&mut self, layers: &[LayerParams]) -> Result<()> {
        if layers.len() != self.network.layers().len() {
            return Err(Error::shape(
                "parameters",
                format!("{} layers", self.network.layers().len()),
                layers.len(),
            ));
        }
        let mut flat = vec![0.0; self.param_len];
        for (i, (layer, slot)) in layers.iter().zip(&self.slots).enumerate() {
            let (w, b) = self.network.layer_parameter_count(i);
            if layer.weights.len() != w {
                return Err(Error::shape(
                    format!("layer {} weights", i + 1),
                    w,
                    layer.weights.len(),
                ));
            }
            if layer.bias.len() != b {
                return Err(Error::shape(
                    format!("layer {} bias", i + 1),
                    b,
                    layer.bias.len(),
                ));
            }
            flat[slot.weights..slot.weights + w].copy_from_slice(&layer.weights);
            flat[slot.bias..slot.bias + b].copy_from_slice(&layer.bias);
        }
        self.backend.write(self.params, 0, &flat)
    }

    /// The loss of the last training step, read back from the device now.
    pub fn loss(&mut self) -> Result<f32> {
        if self.steps == 0 {
            return Err(Error::value("loss", "no training step has run yet"));
        }
        Ok(self.backend.read(self.loss_value.region(1))?[0])
    }

    /// Runs `config.iterations` gradient-descent steps on `inputs` (`[rows, inputs]` row-major) and `targets`
    /// (`[rows, outputs]`, or `[rows]` class indices for `ce`).
    pub fn train(&mut self, inputs: &[f32], targets: &[f32], config: &TrainConfig) -> Result<()> {
        let rows = self.check_data(inputs, Some(targets))?;
        let batch = match config.batch_size {
            Some(0) => return Err(Error::value("batch size", "must be at least 1, got 0")),
            Some(b) => b.min(rows),
            None => rows,
        };
        self.set_learning_rate(config.learning_rate)?;
        self.ensure_capacity(batch)?;
        let (n_in, n_target) = (self.network.inputs(), self.target_width());
        if batch == rows {
            // Full batch: the data goes up once and every step reuses it.
            self.upload(&inputs[..rows * n_in], &targets[..rows * n_target])?;
            let plan = self.plan(Plan::Train, rows)?;
            for _ in 0..config.iterations {
                self.run_step(&plan)?;
            }
            return Ok(());
        }
        for _ in 0..config.iterations {
            if self.cursor >= rows {
                self.cursor = 0;
            }
            let start = self.cursor;
            let end = (start + batch).min(rows);
            self.upload(
                &inputs[start * n_in..end * n_in],
                &targets[start * n_target..end * n_target],
            )?;
            let plan = self.plan(Plan::Train, end - start)?;
            self.run_step(&plan)?;
            self.cursor = end;
        }
        Ok(())
    }

    /// One gradient-descent step on exactly this batch.
    pub fn train_step(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
        learning_rate: f32,
    ) -> Result<()> {
        let rows = self.check_data(inputs, Some(targets))?;
        self.set_learning_rate(learning_rate)?;
        self.ensure_capacity(rows)?;
        self.upload(inputs, targets)?;
        let plan = self.plan(Plan::Train, rows)?;
        self.run_step(&plan)
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
        let plan = self.plan(Plan::Gradients, rows)?;
        for &kernel in &plan {
            self.backend.enqueue(kernel)?;
        }
        self.backend.submit()?;
        let loss = self.backend.read(self.loss_value.region(1))?[0];
        let grads = self.read_layers(self.param_grads)?;
        Ok((loss, grads))
    }

    /// Network outputs for `inputs` (`[rows, inputs]`): probabilities for sigmoid and softmax outputs.
    pub fn predict(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        let mut outputs = self.layer_outputs(inputs)?;
        Ok(outputs.pop().expect("a network has at least one layer"))
    }

    /// Every layer's output for `inputs`, activations applied, one `[rows, units]` matrix per layer.
    pub fn layer_outputs(&mut self, inputs: &[f32]) -> Result<Vec<Vec<f32>>> {
        let rows = self.check_data(inputs, None)?;
        let chunk = match &self.workspace {
            Some(ws) => ws.capacity,
            None => rows.min(PREDICT_CHUNK),
        };
        self.ensure_capacity(chunk)?;
        let n_in = self.network.inputs();
        let widths: Vec<usize> = self.network.layers().iter().map(|l| l.units).collect();
        let mut result: Vec<Vec<f32>> = widths
            .iter()
            .map(|w| Vec::with_capacity(rows * w))
            .collect();
        let mut start = 0;
        while start < rows {
            let end = (start + chunk).min(rows);
            let ws = self.workspace.as_ref().expect("capacity ensured");
            let input = ws.input;
            let outputs = ws.outputs.clone();
            self.backend
                .write(input, 0, &inputs[start * n_in..end * n_in])?;
            let plan = self.plan(Plan::Predict, end - start)?;
            for &kernel in &plan {
                self.backend.enqueue(kernel)?;
            }
            self.backend.submit()?;
            for ((out, &buffer), &width) in result.iter_mut().zip(&outputs).zip(&widths) {
                out.extend(self.backend.read(buffer.region((end - start) * width))?);
            }
            start = end;
        }
        Ok(result)
    }

    fn target_width(&self) -> usize {
        self.network.loss().target_width(self.network.outputs())
    }

    /// Checks shapes and values; returns the row count.
    fn check_data(&self, inputs: &[f32], targets: Option<&[f32]>) -> Result<usize> {
        let n_in = self.network.inputs();
        if inputs.is_empty() || !inputs.len().is_multiple_of(n_in) {
            return Err(Error::shape(
                "inputs",
                format!("a non-empty multiple of {n_in} values (the network's input width)"),
                format!("{} values", inputs.len()),
            ));
        }
        let rows = inputs.len() / n_in;
        if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
            return Err(Error::value(
                "inputs",
                format!(
                    "row {} column {} is {}",
                    i / n_in + 1,
                    i % n_in + 1,
                    inputs[i]
                ),
            ));
        }
        let Some(targets) = targets else {
            return Ok(rows);
        };
        let width = self.target_width();
        if targets.len() != rows * width {
            return Err(Error::shape(
                "targets",
                format!("{} values ({rows} rows x {width})", rows * width),
                format!("{} values", targets.len()),
            ));
        }
        let classes = self.network.outputs();
        for (i, &y) in targets.iter().enumerate() {
            let ok = match self.network.loss() {
                Loss::Ce => y >= 0.0 && y.fract() == 0.0 && (y as usize) < classes,
                Loss::Bce => (0.0..=1.0).contains(&y),
                Loss::Sse | Loss::Mse => y.is_finite(),
            };
            if !ok {
                let expected = match self.network.loss() {
                    Loss::Ce => format!("a class index in 0..{classes}"),
                    Loss::Bce => "a value in [0, 1]".to_string(),
                    _ => "a finite value".to_string(),
                };
                return Err(Error::value(
                    "targets",
                    format!("row {} holds {y}, expected {expected}", i / width + 1),
                ));
            }
        }
        Ok(rows)
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<()> {
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(Error::value(
                "learning rate",
                format!("must be finite and > 0, got {learning_rate}"),
            ));
        }
        if self.learning_rate_value != Some(learning_rate) {
            self.backend
                .write(self.learning_rate, 0, &[learning_rate])?;
            self.learning_rate_value = Some(learning_rate);
        }
        Ok(())
    }

    fn upload(&mut self, inputs: &[f32], targets: &[f32]) -> Result<()> {
        let ws = self.workspace.as_ref().expect("capacity ensured");
        let (input, target) = (ws.input, ws.target);
        self.backend.write(input, 0, inputs)?;
        self.backend.write(target, 0, targets)
    }

    /// One step: enqueue the prepared ops and submit them together. Nothing is read back.
    fn run_step(&mut self, plan: &[KernelId]) -> Result<()> {
        for &kernel in plan {
            self.backend.enqueue(kernel)?;
        }
        self.backend.submit()?;
        self.steps += 1;
        Ok(())
    }

    /// Makes sure activation buffers hold `rows` rows; growing them drops the prepared plans.
    fn ensure_capacity(&mut self, rows: usize) -> Result<()> {
        if self
            .workspace
            .as_ref()
            .is_some_and(|ws| ws.capacity >= rows)
        {
            return Ok(());
        }
        if let Some(old) = self.workspace.take() {
            for buffer in [old.input, old.target, old.row_loss]
                .into_iter()
                .chain(old.outputs)
                .chain(old.grads)
            {
                self.backend.free(buffer)?;
            }
        }
        self.plans.clear();
        let widths: Vec<usize> = self.network.layers().iter().map(|l| l.units).collect();
        let backend = &mut self.backend;
        let mut alloc_each = |what: &str| -> Result<Vec<BufferId>> {
            widths
                .iter()
                .enumerate()
                .map(|(i, w)| backend.alloc(&format!("layers.{i}.{what}"), rows * w))
                .collect()
        };
        let outputs = alloc_each("output")?;
        let grads = alloc_each("grad")?;
        let input = self
            .backend
            .alloc("input batch", rows * self.network.inputs())?;
        let target = self
            .backend
            .alloc("target batch", rows * self.target_width())?;
        let row_loss = self.backend.alloc("row loss", rows)?;
        self.workspace = Some(Workspace {
            capacity: rows,
            input,
            target,
            outputs,
            grads,
            row_loss,
        });
        Ok(())
    }

    /// The prepared ops of `plan` for `rows` rows, built on first use.
    fn plan(&mut self, plan: Plan, rows: usize) -> Result<Vec<KernelId>> {
        if let Some(kernels) = self.plans.get(&(plan, rows)) {
            return Ok(kernels.clone());
        }
        let step = StepBuffers {
            network: &self.network,
            slots: &self.slots,
            param_len: self.param_len,
            params: self.params,
            param_grads: self.param_grads,
            learning_rate: self.learning_rate,
            loss_value: self.loss_value,
            workspace: self.workspace.as_ref().expect("capacity ensured"),
        };
        let ops = match plan {
            Plan::Train => step.train_ops(rows),
            Plan::Gradients => {
                let mut ops = step.train_ops(rows);
                ops.pop(); // the update
                ops
            }
            Plan::Predict => step.forward_ops(rows, false),
        };
        let kernels = ops
            .iter()
            .map(|op| self.backend.prepare(op))
            .collect::<Result<Vec<_>>>()?;
        self.plans.insert((plan, rows), kernels.clone());
        Ok(kernels)
    }
}
