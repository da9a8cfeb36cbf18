//! The ops of one training step or forward pass, built once per batch size from the model's buffers: one
//! forward loop over the layers, the loss, one reverse loop. Backend-free and kind-free: each layer's ops
//! come from its [`LayerKind`](crate::layers::LayerKind).

use crate::activation::Activation;
use crate::backend::{BufferId, Op, Region, STATS_LEN};
use crate::layers::{Fusion, LayerStep, Mode};
use crate::network::Network;
use crate::ops::{
    AdamUpdate, AdamWUpdate, AdvanceStep, ClassWeightSum, ConfusionCounts, ConvAlgorithm,
    CrossEntropyGrad, GradNormScale, LossGrad, LossSum, MomentumUpdate, NesterovUpdate,
    RmspropUpdate, SgdUpdate,
};
use crate::optim::{hyper::LEN as HYPER_LEN, Optimizer};

/// Activations and their gradients for up to `capacity` rows.
pub(crate) struct Workspace {
    pub capacity: usize,
    pub input: BufferId,
    pub target: BufferId,
    /// Each layer's output. A layer that works in place shares its input's buffer (the input batch for
    /// one at the start); the values are those after every in-place layer that follows.
    pub outputs: Vec<BufferId>,
    /// The loss gradient with respect to each layer's output, shared the same way; `None` for in-place
    /// layers at the start, whose input gradient no one needs.
    pub grads: Vec<Option<BufferId>>,
    pub row_loss: BufferId,
    pub row_hits: BufferId,
    /// The scratch buffers every layer shares (see [`crate::layers::LayerKind::scratch`]), when any needs one.
    pub scratch: [Option<BufferId>; 2],
    /// What each layer's forward pass leaves for its backward pass (see [`crate::layers::LayerKind::saved`]).
    pub saved: Vec<Option<BufferId>>,
    /// Every buffer above, once: what to free.
    pub owned: Vec<BufferId>,
}

/// Everything a step reads or writes.
pub(crate) struct StepBuffers<'a> {
    pub network: &'a Network,
    /// Offsets of each layer's parameters in the flat parameter buffer.
    pub slots: &'a [Vec<usize>],
    pub param_len: usize,
    /// Offsets of each layer's state tensors in `state`.
    pub state_slots: &'a [Vec<usize>],
    pub state: BufferId,
    pub params: BufferId,
    pub param_grads: BufferId,
    pub hyper: BufferId,
    pub stats: BufferId,
    pub optimizer_state: &'a [BufferId],
    pub workspace: &'a Workspace,
    /// The model's seed, from which each layer's random draws are keyed.
    pub seed: u64,
    /// How conv layers run.
    pub conv_algorithm: ConvAlgorithm,
    /// Cross-entropy's class weights and label smoothing in training steps, when set.
    pub weighting: Option<Weighting>,
    /// The confusion counts of [`Self::score_ops`], once allocated.
    pub confusion: Option<BufferId>,
}

/// Training cross-entropy as `torch.nn.CrossEntropyLoss(weight, label_smoothing)`: the weights (ones
/// when only smoothing is asked for) in a buffer of one float per class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Weighting {
    pub class_weights: BufferId,
    pub label_smoothing: f32,
}

impl StepBuffers<'_> {
    /// How the activation layer `i` runs: within the loss when the loss takes logits and follows it, within
    /// the layer before when that layer takes an epilogue, else on its own.
    fn fusion(&self, i: usize, with_loss: bool) -> Fusion {
        let layers = self.network.layers();
        let Some(activation) = layers[i].activation() else {
            return Fusion::Own;
        };
        if with_loss && i == layers.len() - 1 && self.network.loss().is_fused() {
            Fusion::IntoLoss
        } else if i > 0 && layers[i - 1].kind().accepts_epilogue() && activation.is_elementwise() {
            Fusion::IntoPrevious
        } else {
            Fusion::Own
        }
    }

    /// What layer `i` reads and writes for `rows` rows.
    fn layer_step(&self, i: usize, rows: usize, mode: Mode, with_loss: bool) -> LayerStep {
        let ws = self.workspace;
        let network = self.network;
        let layers = network.layers();
        let (input_shape, output_shape) = (network.input_of(i), network.shapes()[i]);
        let input_len = rows * input_shape.size();
        let output_len = rows * output_shape.size();
        let input = if i == 0 { ws.input } else { ws.outputs[i - 1] };
        let specs = network.params(i);
        let region = |buffer: BufferId, j: usize| Region {
            buffer,
            offset: self.slots[i][j],
            len: specs[j].len() as usize,
        };
        let layer = layers[i].kind();
        let needs = layer.scratch(input_shape, output_shape, self.conv_algorithm);
        let scratch = std::array::from_fn(|j| {
            let buffer = ws.scratch[j].unwrap_or(ws.input);
            buffer.region(rows * needs[j] as usize)
        });
        let epilogue = match layers.get(i + 1).and_then(|l| l.activation()) {
            Some(a) if self.fusion(i + 1, with_loss) == Fusion::IntoPrevious => a,
            _ => Activation::Linear,
        };
        LayerStep {
            rows,
            mode,
            input_shape,
            output_shape,
            input: input.region(input_len),
            output: ws.outputs[i].region(output_len),
            // In-place layers at the start have no gradient buffer; their backward pass never runs.
            grad_output: ws.grads[i].unwrap_or(ws.outputs[i]).region(output_len),
            grad_input: (i > 0)
                .then(|| ws.grads[i - 1])
                .flatten()
                .map(|g| g.region(input_len)),
            params: (0..specs.len()).map(|j| region(self.params, j)).collect(),
            param_grads: (0..specs.len())
                .map(|j| region(self.param_grads, j))
                .collect(),
            state: network
                .state(i)
                .iter()
                .enumerate()
                .map(|(j, spec)| Region {
                    buffer: self.state,
                    offset: self.state_slots[i][j],
                    len: spec.len() as usize,
                })
                .collect(),
            saved: ws.saved[i]
                .unwrap_or(ws.input)
                .region(layer.saved(input_shape)),
            hyper: self.hyper.region(HYPER_LEN),
            seed: layer_seed(self.seed, i),
            scratch,
            scratch_kept: (i + 1..layers.len()).all(|j| {
                layers[j].kind().scratch(
                    network.input_of(j),
                    network.shapes()[j],
                    self.conv_algorithm,
                ) == [0, 0]
            }),
            epilogue,
            fusion: self.fusion(i, with_loss),
            conv_algorithm: self.conv_algorithm,
        }
    }

    /// The forward pass in `mode`. With the loss to follow, an output activation that the loss applies
    /// itself is left out (the output holds logits); without, the output is always activated.
    pub(crate) fn forward_ops(&self, rows: usize, mode: Mode, with_loss: bool) -> Vec<Op> {
        let mut ops = Vec::new();
        for (i, layer) in self.network.layers().iter().enumerate() {
            let step = self.layer_step(i, rows, mode, with_loss);
            layer.kind().forward(&step, &mut ops);
        }
        ops
    }

    /// The forward pass, then the loss value, its gradient and the running epoch sums. In training mode
    /// with a [`Weighting`], cross-entropy is weighted and smoothed.
    pub(crate) fn loss_ops(&self, rows: usize, mode: Mode) -> Vec<Op> {
        let mut ops = self.forward_ops(rows, mode, true);
        let ws = self.workspace;
        let last = self.network.layers().len() - 1;
        let loss = self.network.loss();
        let outputs = self.network.outputs();
        let grad = ws.grads[last].expect("the output layer has a gradient");
        let stats = self.stats.region(STATS_LEN);
        let (prediction, target) = (
            ws.outputs[last].region(rows * outputs),
            ws.target.region(rows * loss.target_width(outputs)),
        );
        let (grad, row_loss, row_hits) = (
            grad.region(rows * outputs),
            ws.row_loss.region(rows),
            ws.row_hits.region(rows),
        );
        let weighting = self.weighting.filter(|_| mode == Mode::Train);
        match weighting {
            Some(w) => {
                let class_weights = w.class_weights.region(outputs);
                ops.push(Op::ClassWeightSum(ClassWeightSum {
                    target,
                    class_weights,
                    stats,
                    rows,
                    classes: outputs,
                }));
                ops.push(Op::CrossEntropyGrad(CrossEntropyGrad {
                    prediction,
                    target,
                    class_weights,
                    stats,
                    grad,
                    row_loss,
                    row_hits,
                    rows,
                    cols: outputs,
                    label_smoothing: w.label_smoothing,
                }));
            }
            None => ops.push(Op::LossGrad(LossGrad {
                prediction,
                target,
                grad,
                row_loss,
                row_hits,
                rows,
                cols: outputs,
                loss,
            })),
        }
        ops.push(Op::LossSum(LossSum {
            row_loss,
            row_hits,
            stats,
            rows,
            scale: loss.scale(rows, outputs),
            weighted: weighting.is_some(),
        }));
        ops
    }

    /// [`Self::loss_ops`] in evaluation mode, then the classifier's confusion counts added up (see
    /// [`ConfusionCounts`]; the caller zeroes them before the first chunk).
    pub(crate) fn score_ops(&self, rows: usize) -> Vec<Op> {
        let mut ops = self.loss_ops(rows, Mode::Eval);
        let ws = self.workspace;
        let last = self.network.layers().len() - 1;
        let loss = self.network.loss();
        let outputs = self.network.outputs();
        let classes = outputs.max(2);
        let counts = self.confusion.expect("confusion counts allocated");
        ops.push(Op::ConfusionCounts(ConfusionCounts {
            prediction: ws.outputs[last].region(rows * outputs),
            target: ws.target.region(rows * loss.target_width(outputs)),
            counts: counts.region(classes * classes),
            rows,
            outputs,
            target_width: loss.target_width(outputs),
            // The output holds logits when the loss applies the activation itself.
            threshold: if loss.is_fused() { 0.0 } else { 0.5 },
        }));
        ops
    }

    /// [`Self::loss_ops`] in training mode, then backpropagation through every layer, last to first.
    pub(crate) fn gradient_ops(&self, rows: usize) -> Vec<Op> {
        let mut ops = self.loss_ops(rows, Mode::Train);
        for (i, layer) in self.network.layers().iter().enumerate().rev() {
            if self.workspace.grads[i].is_none() {
                continue;
            }
            let step = self.layer_step(i, rows, Mode::Train, true);
            layer.kind().backward(&step, &mut ops);
        }
        ops
    }

    /// [`Self::gradient_ops`], then [`Self::update_ops`].
    pub(crate) fn train_ops(
        &self,
        rows: usize,
        optimizer: Optimizer,
        clip_norm: bool,
        clipped: bool,
    ) -> Vec<Op> {
        let mut ops = self.gradient_ops(rows);
        ops.extend(self.update_ops(optimizer, clip_norm, clipped));
        ops
    }

    /// The optimizer's update of every parameter from the gradients in `param_grads`, reading clipped
    /// gradients when `clipped` (after the gradients' global norm when `clip_norm`: the update reads the
    /// scale it leaves in `hyper`). Data-parallel training runs it alone, on gradients averaged over ranks.
    pub(crate) fn update_ops(
        &self,
        optimizer: Optimizer,
        clip_norm: bool,
        clipped: bool,
    ) -> Vec<Op> {
        let mut ops = Vec::new();
        let params = self.params.region(self.param_len);
        let grads = self.param_grads.region(self.param_len);
        let hyper = self.hyper.region(HYPER_LEN);
        let state = |i: usize| self.optimizer_state[i].region(self.param_len);
        let uses_step = self.network.layers().iter().any(|l| l.kind().uses_step());
        // Adam counts steps for its bias corrections; a layer with random draws needs the count too. It
        // advances after the backward pass, so a step's forward and backward passes see the same count.
        if uses_step || optimizer.counts_steps() {
            ops.push(Op::AdvanceStep(AdvanceStep { hyper }));
        }
        if clip_norm {
            ops.push(GradNormScale { grads, hyper }.into());
        }
        ops.push(match optimizer {
            Optimizer::Sgd => SgdUpdate {
                params,
                grads,
                hyper,
                clipped,
            }
            .into(),
            Optimizer::Momentum { .. } => MomentumUpdate {
                params,
                grads,
                velocity: state(0),
                hyper,
                clipped,
            }
            .into(),
            Optimizer::Nesterov { .. } => NesterovUpdate {
                params,
                grads,
                velocity: state(0),
                hyper,
                clipped,
            }
            .into(),
            Optimizer::Adam { .. } => AdamUpdate {
                params,
                grads,
                first_moment: state(0),
                second_moment: state(1),
                hyper,
                clipped,
            }
            .into(),
            Optimizer::AdamW { .. } => AdamWUpdate {
                params,
                grads,
                first_moment: state(0),
                second_moment: state(1),
                hyper,
                clipped,
            }
            .into(),
            Optimizer::Rmsprop { .. } => RmspropUpdate {
                params,
                grads,
                square_avg: state(0),
                momentum_buffer: state(1),
                grad_avg: state(2),
                hyper,
                clipped,
            }
            .into(),
        });
        ops
    }
}

/// Layer `i`'s seed: the model's seed and the index, hashed.
fn layer_seed(seed: u64, i: usize) -> u32 {
    use crate::ops::dropout::hash;
    hash(hash(seed as u32 ^ hash((seed >> 32) as u32)) ^ i as u32)
}
