//! A network bound to a backend: parameters, gradients, optimizer state and activations live in backend buffers
//! allocated once per (network, batch capacity); a training step is a prepared list of ops enqueued and
//! submitted once. `train.rs` beside this file holds the training and inference entry points.

mod distributed;
mod held;
mod named;
mod plans;
mod resume;
mod train;

pub use held::STEPS_PER_SUBMIT;
pub use named::NamedTensor;

pub use resume::OptimizerState;
pub use train::{EpochStats, TrainConfig};

use crate::backend::{Backend, BufferId, Counters, DeviceInfo, KernelId, STATS_LEN};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::graph::{Weighting, Workspace};
use crate::loss::Loss;
use crate::memory::Request;
use crate::network::{LayerParams, Network};
use crate::ops::ConvAlgorithm;
use crate::optim::{hyper, Clipping, Optimizer};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Plan {
    /// Forward, loss, backward and the update of the named optimizer; clipping by the gradients' global
    /// norm (first flag) and by any clipping (second) before it; the label smoothing's bits when
    /// cross-entropy is weighted or smoothed (see [`Model::set_cross_entropy`]).
    Train(&'static str, bool, bool, Option<u32>),
    /// Forward, loss and backward: leaves the gradients for [`Model::gradients`]; weighted as `Train`.
    Gradients(Option<u32>),
    /// The update alone, from gradients written into `param_grads` (data-parallel training); flags as
    /// `Train`'s.
    Update(&'static str, bool, bool),
    /// Forward and loss: the running sums for [`Model::evaluate`].
    Evaluate,
    /// [`Plan::Evaluate`] and the confusion counts ([`Model::evaluate_with_confusion`]).
    Score,
    /// Forward with the output activated.
    Predict,
    /// A batch gathered from the held training set, then the cursor advanced past it.
    Gather,
}

/// A training set copied to the device by [`Model::hold_training_set`]: epochs gather their batches there.
struct HeldData {
    inputs: BufferId,
    targets: BufferId,
    /// The epoch's row order as `u32` bit patterns, written once per epoch.
    order: BufferId,
    /// Where the next gather starts in `order` (a `u32` bit pattern).
    cursor: BufferId,
    rows: usize,
}

/// A network, its parameters and the backend it trains on.
pub struct Model {
    network: Network,
    backend: Box<dyn Backend>,
    /// Offsets of each layer's parameters in the flat parameter buffer.
    slots: Vec<Vec<usize>>,
    /// Offsets of each layer's state tensors (running statistics) in the state buffer, and its length.
    state_slots: Vec<Vec<usize>>,
    state_len: usize,
    state: BufferId,
    param_len: usize,
    params: BufferId,
    param_grads: BufferId,
    /// Hyperparameters and Adam's step count (layout in [`crate::optim::hyper`]).
    hyper: BufferId,
    /// The host's copy of the host-owned hyperparameters and the optimizer they belong to.
    hyper_host: Option<(Optimizer, [f32; hyper::HOST_LEN])>,
    /// Velocity, or Adam's first and second moments, allocated on first use.
    optimizer_state: Vec<BufferId>,
    /// `[last step's loss, Σ row losses, Σ hits, steps, first non-finite step]` (see the `loss_sum` op).
    stats: BufferId,
    steps: u64,
    /// Steps taken with the current optimizer rule since its state was zeroed or restored: a rule change
    /// after any would throw that state away, so it must be asked for ([`Model::reset_optimizer`]).
    rule_steps: u64,
    after_first_step: Option<Counters>,
    workspace: Option<Workspace>,
    plans: HashMap<(Plan, usize), Vec<KernelId>>,
    /// Row where the next mini-batch of [`Model::train`] starts, so consecutive calls continue.
    cursor: usize,
    /// Reused host buffers for gathering shuffled batches.
    scratch: (Vec<f32>, Vec<f32>),
    held: Option<HeldData>,
    /// The seed of the initial parameters, which also keys random draws such as dropout masks.
    seed: u64,
    /// How conv layers run: the backend's default unless [`Model::set_conv_algorithm`] chose.
    conv_algorithm: ConvAlgorithm,
    /// Training cross-entropy's class weights and smoothing, when [`Model::set_cross_entropy`] set any.
    weighting: Option<Weighting>,
    /// `classes²` confusion counts, allocated by the first [`Model::evaluate_with_confusion`].
    confusion: Option<BufferId>,
    /// One weight per class, allocated by the first weighted [`Model::set_cross_entropy`] and kept.
    class_weights: Option<BufferId>,
    /// The class weights of a weighted cross-entropy on the host, for data-parallel training's normaliser.
    host_class_weights: Option<Vec<f32>>,
}

/// Refuses `request` on `backend` (see [`crate::memory::check`]).
fn check_memory(backend: &dyn Backend, request: &Request) -> Result<()> {
    let limits = backend.memory_limits();
    let device = if limits.host_memory {
        "the host (CPU backend)".to_string()
    } else {
        format!("{} ({})", backend.info().adapter, backend.info().api)
    };
    crate::memory::check(request, &limits, &device)
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
        let len = network.param_len();
        check_memory(
            backend.as_ref(),
            &Request {
                purpose: "the parameters, their gradients and the optimizer's state",
                // Room for Adam's two moments is counted now: the host backend's later checks compare
                // against the memory available then, which does not yet show zeroed pages never touched.
                buffers: vec![
                    ("parameters".into(), len),
                    ("parameter gradients".into(), len),
                    ("optimizer state 0".into(), len),
                    ("optimizer state 1".into(), len),
                ],
                // the initial values are drawn on the host first
                host_bytes: len * 4,
                detail: network.largest_layer(),
            },
        )?;
        let conv_algorithm = backend.conv_algorithm();
        let (slots, param_len) = network.param_slots();
        let params = backend.alloc("parameters", param_len)?;
        let param_grads = backend.alloc("parameter gradients", param_len)?;
        let (state_slots, state_len) = network.state_slots();
        let state = backend.alloc("running statistics", state_len)?;
        let hyper = backend.alloc("hyperparameters", hyper::LEN)?;
        let stats = backend.alloc("loss statistics", STATS_LEN)?;
        let mut model = Model {
            network,
            backend,
            slots,
            param_len,
            state_slots,
            state_len,
            state,
            params,
            param_grads,
            hyper,
            hyper_host: None,
            optimizer_state: Vec::new(),
            stats,
            steps: 0,
            rule_steps: 0,
            after_first_step: None,
            workspace: None,
            plans: HashMap::new(),
            cursor: 0,
            scratch: (Vec::new(), Vec::new()),
            held: None,
            seed,
            conv_algorithm,
            weighting: None,
            confusion: None,
            class_weights: None,
            host_class_weights: None,
        };
        let initial = model.network.init_parameters(seed);
        model.set_parameters(&initial)?;
        Ok(model)
    }

    /// How conv layers run on this model's backend.
    pub fn conv_algorithm(&self) -> ConvAlgorithm {
        self.conv_algorithm
    }

    /// Runs conv layers `algorithm`'s way from the next step on (the bench compares the two); the values
    /// agree within rounding. The workspace is made again at the next step, as its scratch needs change.
    pub fn set_conv_algorithm(&mut self, algorithm: ConvAlgorithm) -> Result<()> {
        if algorithm != self.conv_algorithm {
            if let Some(old) = self.workspace.take() {
                for buffer in old.owned {
                    self.backend.free(buffer)?;
                }
            }
            self.plans.clear();
            self.conv_algorithm = algorithm;
        }
        Ok(())
    }

    /// Frees this model's buffers and gives the backend back, e.g. to build another model on an already
    /// opened device (whose compiled pipelines are kept).
    pub fn into_backend(mut self) -> Box<dyn Backend> {
        let mut buffers = vec![
            self.params,
            self.param_grads,
            self.state,
            self.hyper,
            self.stats,
        ];
        buffers.append(&mut self.optimizer_state);
        if let Some(held) = self.held.take() {
            buffers.extend([held.inputs, held.targets, held.order, held.cursor]);
        }
        if let Some(ws) = self.workspace.take() {
            buffers.extend(ws.owned);
        }
        for buffer in buffers {
            // Freeing a buffer we allocated cannot fail; a device error here changes nothing for the caller.
            let _ = self.backend.free(buffer);
        }
        self.backend
    }

    /// The network the model trains: its layers, shapes and loss.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// What the device can hold (see [`crate::memory`]).
    pub fn memory_limits(&self) -> crate::memory::MemoryLimits {
        self.backend.memory_limits()
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

    /// Forgets the optimizer's state (momentum, Adam's moments and step count) so that the next step
    /// starts its rule afresh, as a new `torch.optim` optimizer would; the parameters are kept. Switching
    /// to another rule after steps of a rule with state is an error until this is called.
    pub fn reset_optimizer(&mut self) {
        self.hyper_host = None;
        self.rule_steps = 0;
    }

    /// The current parameters, one entry per layer that has parameters (see
    /// [`Network::parametrised_layers`]), with the running statistics of the layers that keep them; a dense
    /// layer's weights are `[inputs, units]` row-major.
    pub fn parameters(&mut self) -> Result<Vec<LayerParams>> {
        self.read_layers(self.params, true)
    }

    /// Splits a flat parameter-shaped buffer into layers, with the state tensors when `state` is set.
    fn read_layers(&mut self, buffer: BufferId, state: bool) -> Result<Vec<LayerParams>> {
        let flat = self.backend.read(buffer.region(self.param_len))?;
        let states = if state {
            self.backend.read(self.state.region(self.state_len))?
        } else {
            Vec::new()
        };
        let tensor = |i: usize, j: usize, len: u128| {
            let at = self.slots[i][j];
            flat[at..at + len as usize].to_vec()
        };
        Ok(self
            .network
            .parametrised_layers()
            .into_iter()
            .map(|i| {
                let specs = self.network.params(i);
                let state_specs = if state {
                    self.network.state(i)
                } else {
                    Vec::new()
                };
                LayerParams {
                    weights: tensor(i, 0, specs[0].len()),
                    bias: tensor(i, 1, specs[1].len()),
                    state: state_specs
                        .iter()
                        .enumerate()
                        .map(|(j, spec)| {
                            let at = self.state_slots[i][j];
                            states[at..at + spec.len() as usize].to_vec()
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// Replaces every parameter; shapes must match the network.
    pub fn set_parameters(&mut self, layers: &[LayerParams]) -> Result<()> {
        let indices = self.network.parametrised_layers();
        if layers.len() != indices.len() {
            return Err(Error::shape(
                "parameters",
                format!("{} layers with parameters", indices.len()),
                layers.len(),
            ));
        }
        let mut flat = vec![0.0; self.param_len];
        let mut states = vec![0.0; self.state_len];
        for (layer, &i) in layers.iter().zip(&indices) {
            let specs = self.network.params(i);
            for (j, (values, name)) in [(&layer.weights, "weights"), (&layer.bias, "bias")]
                .into_iter()
                .enumerate()
            {
                let len = specs[j].len() as usize;
                if values.len() != len {
                    return Err(Error::shape(format!("layer {i} {name}"), len, values.len()));
                }
                if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                    return Err(Error::value(
                        format!("layer {i} {name}"),
                        format!("hold {v}"),
                    ));
                }
                let at = self.slots[i][j];
                flat[at..at + len].copy_from_slice(values);
            }
            let state_specs = self.network.state(i);
            if layer.state.len() != state_specs.len() {
                return Err(Error::shape(
                    format!("layer {i} state"),
                    format!("{} tensors", state_specs.len()),
                    layer.state.len(),
                ));
            }
            for (j, (values, spec)) in layer.state.iter().zip(&state_specs).enumerate() {
                let len = spec.len() as usize;
                if values.len() != len {
                    return Err(Error::shape(
                        format!("layer {i} {}", spec.name),
                        len,
                        values.len(),
                    ));
                }
                if let Some(v) = values
                    .iter()
                    .find(|&&v| !v.is_finite() || (spec.nonnegative && v < 0.0))
                {
                    return Err(Error::value(
                        format!("layer {i} {}", spec.name),
                        format!("hold {v}"),
                    ));
                }
                let at = self.state_slots[i][j];
                states[at..at + len].copy_from_slice(values);
            }
        }
        self.backend.write(self.params, 0, &flat)?;
        self.backend.write(self.state, 0, &states)
    }

    /// The loss of the last training step, read back from the device now.
    pub fn loss(&mut self) -> Result<f32> {
        if self.steps == 0 {
            return Err(Error::value("loss", "no training step has run yet"));
        }
        Ok(self.backend.read(self.stats.region(1))?[0])
    }

    fn target_width(&self) -> usize {
        self.network.loss().target_width(self.network.outputs())
    }

    /// Checks shapes and values; returns the row count.
    pub(crate) fn check_data(&self, inputs: &[f32], targets: Option<&[f32]>) -> Result<usize> {
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
            let (row, col) = (i / n_in + 1, i % n_in + 1);
            return Err(Error::value(
                "inputs",
                format!("row {row} column {col} is {}", inputs[i]),
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
        let loss = self.network.loss();
        let valid = |y: f32| match loss {
            Loss::Ce => y >= 0.0 && y.fract() == 0.0 && (y as usize) < classes,
            Loss::Bce => (0.0..=1.0).contains(&y),
            Loss::Sse | Loss::Mse => y.is_finite(),
        };
        if let Some(i) = targets.iter().position(|&y| !valid(y)) {
            let expected = match loss {
                Loss::Ce => format!("a class index in 0..{classes}"),
                Loss::Bce => "a value in [0, 1]".to_string(),
                Loss::Sse | Loss::Mse => "a finite value".to_string(),
            };
            let row = i / width + 1;
            return Err(Error::value(
                "targets",
                format!("row {row} holds {}, expected {expected}", targets[i]),
            ));
        }
        Ok(rows)
    }

    /// Makes `optimizer` current: state buffers exist (zeroed, with the step count, when the rule changes)
    /// and the device holds these hyperparameters.
    fn set_optimizer(
        &mut self,
        optimizer: Optimizer,
        learning_rate: f32,
        weight_decay: f32,
        clipping: Clipping,
    ) -> Result<()> {
        let values = optimizer.host_hyper(learning_rate, weight_decay, clipping)?;
        let same_rule = self
            .hyper_host
            .is_some_and(|(current, _)| current.name() == optimizer.name());
        if let Some((current, _)) = self.hyper_host.filter(|_| !same_rule) {
            if current.state_buffers() > 0 && self.rule_steps > 0 {
                return Err(Error::value(
                    "optimizer",
                    format!(
                        "{} after {} step{} of {}, whose state switching would zero; call Model::reset_optimizer() first to start afresh",
                        optimizer.name(),
                        self.rule_steps,
                        if self.rule_steps == 1 { "" } else { "s" },
                        current.name()
                    ),
                ));
            }
        }
        if !same_rule {
            self.rule_steps = 0;
            let missing = optimizer
                .state_buffers()
                .saturating_sub(self.optimizer_state.len());
            check_memory(
                self.backend.as_ref(),
                &Request {
                    purpose: &format!("the {} optimizer's state", optimizer.name()),
                    buffers: (0..missing)
                        .map(|i| (format!("optimizer state {i}"), self.param_len as u128))
                        .collect(),
                    host_bytes: self.param_len as u128 * 4,
                    detail: self.network.largest_layer(),
                },
            )?;
            while self.optimizer_state.len() < optimizer.state_buffers() {
                let label = format!("optimizer state {}", self.optimizer_state.len());
                let buffer = self.backend.alloc(&label, self.param_len)?;
                self.optimizer_state.push(buffer);
            }
            let zeros = vec![0.0; self.param_len];
            for &buffer in &self.optimizer_state {
                self.backend.write(buffer, 0, &zeros)?;
            }
            self.backend.write(
                self.hyper,
                hyper::HOST_LEN,
                &[0.0; hyper::LEN - hyper::HOST_LEN],
            )?;
        }
        if self.hyper_host.map(|(_, v)| v) != Some(values) || !same_rule {
            self.backend.write(self.hyper, 0, &values)?;
        }
        self.hyper_host = Some((optimizer, values));
        Ok(())
    }

    /// Uploads one batch into the workspace.
    fn upload(&mut self, inputs: &[f32], targets: &[f32]) -> Result<()> {
        let ws = self.workspace.as_ref().expect("capacity ensured");
        let (input, target) = (ws.input, ws.target);
        self.backend.write(input, 0, inputs)?;
        self.backend.write(target, 0, targets)
    }

    /// Enqueues a plan's kernels and submits them as one piece of work. Nothing is read back.
    fn run(&mut self, plan: &[KernelId]) -> Result<()> {
        for &kernel in plan {
            self.backend.enqueue(kernel)?;
        }
        self.backend.submit()
    }

    /// Counts a training step; remembers the backend's counters after the first one.
    fn count_step(&mut self) {
        self.steps += 1;
        self.rule_steps += 1;
        if self.steps == 1 {
            self.after_first_step = Some(self.backend.counters());
        }
    }

    /// The backend's counters right after this model's first training step (`None` before it), so a
    /// benchmark can tell what was created after it.
    pub fn counters_after_first_step(&self) -> Option<Counters> {
        self.after_first_step
    }

    /// Enqueues a plan's kernels without submitting them: the read that follows sends them along with its
    /// copy, in the same submission.
    fn enqueue_only(&mut self, plan: &[KernelId]) -> Result<()> {
        plan.iter()
            .try_for_each(|&kernel| self.backend.enqueue(kernel))
    }

    /// Zeroes the running sums (everything but the last step's loss).
    fn reset_stats(&mut self) -> Result<()> {
        self.backend.write(self.stats, 1, &[0.0; STATS_LEN - 1])
    }

    /// Reads the running sums over `rows` samples as a mean loss and an accuracy.
    fn read_stats(&mut self, rows: usize) -> Result<EpochStats> {
        let stats = self.backend.read(self.stats.region(STATS_LEN))?;
        Ok(self.stats_of(&stats, rows))
    }

    /// The running sums `stats` (as read from the device, or added up over ranks) over `rows` samples.
    fn stats_of(&self, stats: &[f32], rows: usize) -> EpochStats {
        let (loss, outputs) = (self.network.loss(), self.network.outputs());
        // A weighted cross-entropy's mean is over the summed class weights, as each step's is.
        let divisor = match stats[crate::ops::loss::EPOCH_WEIGHT_SUM] {
            sum if sum > 0.0 => sum,
            _ => loss.mean_divisor(rows, outputs),
        };
        EpochStats {
            loss: stats[1] / divisor,
            accuracy: stats[2] / loss.hits_divisor(rows, outputs),
            first_bad_step: (stats[4] > 0.0).then_some(stats[4] as usize),
        }
    }
}
