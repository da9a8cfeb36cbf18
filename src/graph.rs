//! The ops of one training step or forward pass, built once per batch size from the model's buffers.
//! Backend-free: the same list runs on the CPU and on the GPU.

use crate::activation::Activation;
use crate::backend::{BufferId, Op, Region, STATS_LEN};
use crate::network::{LayerSlots, Network};
use crate::ops::{
    ActBackward, AdamUpdate, AdvanceStep, BiasGrad, LossGrad, LossSum, MatmulBiasAct, MatmulNt,
    MatmulTn, MomentumUpdate, SgdUpdate, Softmax, SoftmaxBackward,
};
use crate::optim::{hyper::LEN as HYPER_LEN, Optimizer};

/// Activations and their gradients for up to `capacity` rows.
pub(crate) struct Workspace {
    pub capacity: usize,
    pub input: BufferId,
    pub target: BufferId,
    /// Layer outputs after the activation (before it for a fused or softmax output layer while training).
    pub outputs: Vec<BufferId>,
    /// Gradient of the loss w.r.t. each layer's pre-activation.
    pub grads: Vec<BufferId>,
    pub row_loss: BufferId,
    pub row_hits: BufferId,
}

/// Everything a step reads or writes.
pub(crate) struct StepBuffers<'a> {
    pub network: &'a Network,
    pub slots: &'a [LayerSlots],
    pub param_len: usize,
    pub params: BufferId,
    pub param_grads: BufferId,
    pub hyper: BufferId,
    pub stats: BufferId,
    pub optimizer_state: &'a [BufferId],
    pub workspace: &'a Workspace,
}

impl StepBuffers<'_> {
    pub(crate) fn weights(&self, layer: usize) -> Region {
        let (w, _) = self.network.layer_parameter_count(layer);
        Region {
            buffer: self.params,
            offset: self.slots[layer].weights,
            len: w,
        }
    }

    pub(crate) fn bias(&self, buffer: BufferId, layer: usize) -> Region {
        Region {
            buffer,
            offset: self.slots[layer].bias,
            len: self.network.layers()[layer].units,
        }
    }

    /// The forward pass. While training, a fused-loss or softmax output layer leaves logits (softmax then
    /// follows as its own op unless the loss is fused); when predicting, the output is always activated.
    pub(crate) fn forward_ops(&self, rows: usize, training: bool) -> Vec<Op> {
        let ws = self.workspace;
        let layers = self.network.layers();
        let last = layers.len() - 1;
        let fused = training && self.network.loss().is_fused();
        let mut ops = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let fan_in = self.network.fan_in(i);
            let input = if i == 0 { ws.input } else { ws.outputs[i - 1] };
            let logits_only = i == last && (fused || layer.activation == Activation::Softmax);
            ops.push(Op::MatmulBiasAct(MatmulBiasAct {
                input: input.region(rows * fan_in),
                weights: self.weights(i),
                bias: self.bias(self.params, i),
                output: ws.outputs[i].region(rows * layer.units),
                m: rows,
                k: fan_in,
                n: layer.units,
                activation: if logits_only {
                    Activation::Linear
                } else {
                    layer.activation
                },
            }));
            if i == last && layer.activation == Activation::Softmax && !fused {
                ops.push(Op::Softmax(Softmax {
                    values: ws.outputs[i].region(rows * layer.units),
                    rows,
                    cols: layer.units,
                }));
            }
        }
        ops
    }

    /// The forward pass (as in training), then the loss value, its gradient and the running epoch sums.
    pub(crate) fn loss_ops(&self, rows: usize) -> Vec<Op> {
        let mut ops = self.forward_ops(rows, true);
        let ws = self.workspace;
        let layers = self.network.layers();
        let last = layers.len() - 1;
        let loss = self.network.loss();
        let outputs = self.network.outputs();
        ops.push(Op::LossGrad(LossGrad {
            prediction: ws.outputs[last].region(rows * outputs),
            target: ws.target.region(rows * loss.target_width(outputs)),
            grad: ws.grads[last].region(rows * outputs),
            row_loss: ws.row_loss.region(rows),
            row_hits: ws.row_hits.region(rows),
            rows,
            cols: outputs,
            loss,
        }));
        ops.push(Op::LossSum(LossSum {
            row_loss: ws.row_loss.region(rows),
            row_hits: ws.row_hits.region(rows),
            stats: self.stats.region(STATS_LEN),
            rows,
            scale: loss.scale(rows, outputs),
        }));
        ops
    }

    /// [`Self::loss_ops`], then backpropagation through every layer by the chain rule into the gradients.
    pub(crate) fn gradient_ops(&self, rows: usize) -> Vec<Op> {
        let mut ops = self.loss_ops(rows);
        let ws = self.workspace;
        let layers = self.network.layers();
        let last = layers.len() - 1;
        let loss = self.network.loss();
        let outputs = self.network.outputs();
        let output_activation = layers[last].activation;
        if !loss.is_fused() && output_activation != Activation::Linear {
            ops.push(act_backward(
                ws.outputs[last].region(rows * outputs),
                ws.grads[last].region(rows * outputs),
                (rows, outputs),
                output_activation,
            ));
        }
        for i in (0..layers.len()).rev() {
            let units = layers[i].units;
            let fan_in = self.network.fan_in(i);
            let input = if i == 0 { ws.input } else { ws.outputs[i - 1] };
            let grad_output = ws.grads[i].region(rows * units);
            ops.push(Op::MatmulTn(MatmulTn {
                input: input.region(rows * fan_in),
                grad_output,
                grad_weights: Region {
                    buffer: self.param_grads,
                    ..self.weights(i)
                },
                m: fan_in,
                k: rows,
                n: units,
            }));
            ops.push(Op::BiasGrad(BiasGrad {
                grad_output,
                grad_bias: self.bias(self.param_grads, i),
                rows,
                cols: units,
            }));
            if i > 0 {
                let below = layers[i - 1].activation;
                ops.push(Op::MatmulNt(MatmulNt {
                    grad_output,
                    weights: self.weights(i),
                    grad_input: ws.grads[i - 1].region(rows * fan_in),
                    m: rows,
                    k: units,
                    n: fan_in,
                }));
                if below != Activation::Linear {
                    ops.push(Op::ActBackward(ActBackward {
                        output: ws.outputs[i - 1].region(rows * fan_in),
                        grad: ws.grads[i - 1].region(rows * fan_in),
                        rows,
                        cols: fan_in,
                        activation: below,
                    }));
                }
            }
        }
        ops
    }

    /// [`Self::gradient_ops`], then the optimizer's update of every parameter.
    pub(crate) fn train_ops(&self, rows: usize, optimizer: Optimizer) -> Vec<Op> {
        let mut ops = self.gradient_ops(rows);
        let params = self.params.region(self.param_len);
        let grads = self.param_grads.region(self.param_len);
        let hyper = self.hyper.region(HYPER_LEN);
        let state = |i: usize| self.optimizer_state[i].region(self.param_len);
        match optimizer {
            Optimizer::Sgd => ops.push(Op::SgdUpdate(SgdUpdate {
                params,
                grads,
                hyper,
            })),
            Optimizer::Momentum { .. } => ops.push(Op::MomentumUpdate(MomentumUpdate {
                params,
                grads,
                velocity: state(0),
                hyper,
            })),
            Optimizer::Adam { .. } => {
                ops.push(Op::AdvanceStep(AdvanceStep { hyper }));
                ops.push(Op::AdamUpdate(AdamUpdate {
                    params,
                    grads,
                    first_moment: state(0),
                    second_moment: state(1),
                    hyper,
                }));
            }
        }
        ops
    }
}

/// The backward op of `activation` over `grad[rows, cols]`, given the activation's `output`.
fn act_backward(
    output: Region,
    grad: Region,
    (rows, cols): (usize, usize),
    activation: Activation,
) -> Op {
    if activation == Activation::Softmax {
        Op::SoftmaxBackward(SoftmaxBackward {
            output,
            grad,
            rows,
            cols,
        })
    } else {
        Op::ActBackward(ActBackward {
            output,
            grad,
            rows,
            cols,
            activation,
        })
    }
}
