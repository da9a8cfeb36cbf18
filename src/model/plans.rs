//! The workspace a batch size needs (activations, gradients, shared scratch, what a layer's forward pass
//! leaves for its backward pass) and the prepared kernels of each plan.

use super::{check_memory, Model, Plan};
use crate::backend::{BufferId, KernelId, Op};
use crate::error::Result;
use crate::graph::{StepBuffers, Workspace};
use crate::layers::Mode;
use crate::memory::Request;
use crate::ops::{AdvanceCursor, GatherRows};

impl Model {
    /// Makes sure activation buffers hold `rows` rows; growing them frees the old ones and the prepared plans.
    pub(super) fn ensure_capacity(&mut self, rows: usize) -> Result<()> {
        if self
            .workspace
            .as_ref()
            .is_some_and(|ws| ws.capacity >= rows)
        {
            return Ok(());
        }
        if let Some(old) = self.workspace.take() {
            for buffer in old.owned {
                self.backend.free(buffer)?;
            }
        }
        self.plans.clear();
        let target_width = self.target_width();
        let network = &self.network;
        let layers = network.layers();
        // Layers that work in place share the buffers of the layer before them.
        let own: Vec<bool> = layers.iter().map(|l| !l.kind().in_place()).collect();
        let r = rows as u128;
        let mut buffers: Vec<(String, u128)> = Vec::new();
        for (i, shape) in network.shapes().iter().enumerate().filter(|(i, _)| own[*i]) {
            buffers.push((format!("layers.{i}.output"), r * shape.len()));
            buffers.push((format!("layers.{i}.grad"), r * shape.len()));
        }
        let scratch: [u128; 2] = std::array::from_fn(|j| {
            (0..layers.len())
                .map(|i| {
                    layers[i].kind().scratch(
                        network.input_of(i),
                        network.shapes()[i],
                        self.conv_algorithm,
                    )[j]
                })
                .max()
                .unwrap_or(0)
        });
        for (j, &floats) in scratch.iter().enumerate().filter(|(_, &f)| f > 0) {
            buffers.push((format!("scratch {j}"), r * floats));
        }
        buffers.push(("input batch".into(), r * network.inputs() as u128));
        buffers.push(("target batch".into(), r * target_width as u128));
        let widest = network.shapes().iter().map(|s| s.len()).max().unwrap_or(0);
        check_memory(
            self.backend.as_ref(),
            &Request {
                purpose: &format!("the activations of a batch of {rows} rows"),
                buffers,
                host_bytes: 0,
                detail: format!(
                    "the widest layer output has {widest} values per row (try a smaller --batch-size)"
                ),
            },
        )?;
        let backend = &mut self.backend;
        let input = backend.alloc("input batch", rows * network.inputs())?;
        let target = backend.alloc("target batch", rows * target_width)?;
        let row_loss = backend.alloc("row loss", rows)?;
        let row_hits = backend.alloc("row hits", rows)?;
        let mut owned = vec![input, target, row_loss, row_hits];
        let mut saved = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            let floats = layer.kind().saved(network.input_of(i));
            saved.push(if floats > 0 {
                let buffer = backend.alloc(&format!("layers.{i}.saved"), floats)?;
                owned.push(buffer);
                Some(buffer)
            } else {
                None
            });
        }
        let mut scratch_buffers = [None; 2];
        for (j, &floats) in scratch.iter().enumerate().filter(|(_, &f)| f > 0) {
            let buffer = backend.alloc(&format!("scratch {j}"), rows * floats as usize)?;
            owned.push(buffer);
            scratch_buffers[j] = Some(buffer);
        }
        let (mut outputs, mut grads) = (Vec::new(), Vec::new());
        for (i, shape) in network.shapes().iter().enumerate() {
            let (output, grad) = if own[i] {
                let len = rows * shape.size();
                let output = backend.alloc(&format!("layers.{i}.output"), len)?;
                let grad = backend.alloc(&format!("layers.{i}.grad"), len)?;
                owned.extend([output, grad]);
                (output, Some(grad))
            } else if i == 0 {
                (input, None)
            } else {
                (outputs[i - 1], grads[i - 1])
            };
            outputs.push(output);
            grads.push(grad);
        }
        self.workspace = Some(Workspace {
            capacity: rows,
            input,
            target,
            outputs,
            grads,
            row_loss,
            row_hits,
            scratch: scratch_buffers,
            saved,
            owned,
        });
        Ok(())
    }

    /// The prepared kernels of `plan` for `rows` rows, built on first use.
    pub(super) fn plan(&mut self, plan: Plan, rows: usize) -> Result<Vec<KernelId>> {
        if let Some(kernels) = self.plans.get(&(plan, rows)) {
            return Ok(kernels.clone());
        }
        let step = StepBuffers {
            network: &self.network,
            slots: &self.slots,
            param_len: self.param_len,
            state_slots: &self.state_slots,
            state: self.state,
            params: self.params,
            param_grads: self.param_grads,
            hyper: self.hyper,
            stats: self.stats,
            optimizer_state: &self.optimizer_state,
            workspace: self.workspace.as_ref().expect("capacity ensured"),
            seed: self.seed,
            conv_algorithm: self.conv_algorithm,
            weighting: self.weighting,
            confusion: self.confusion,
        };
        if matches!(plan, Plan::Train(..) | Plan::Gradients(_)) {
            self.network.check_batch(rows)?;
        }
        let ops = match plan {
            Plan::Train(_, clip_norm, clipped, _) => {
                let (optimizer, _) = self.hyper_host.expect("optimizer set before training");
                // Which clipping there is decides the ops; the bounds themselves are in `hyper`.
                step.train_ops(rows, optimizer, clip_norm, clipped)
            }
            Plan::Gradients(_) => step.gradient_ops(rows),
            Plan::Update(_, clip_norm, clipped) => {
                let (optimizer, _) = self.hyper_host.expect("optimizer set before training");
                step.update_ops(optimizer, clip_norm, clipped)
            }
            Plan::Evaluate => step.loss_ops(rows, Mode::Eval),
            Plan::Score => step.score_ops(rows),
            Plan::Predict => step.forward_ops(rows, Mode::Eval, false),
            Plan::Gather => {
                let held = self.held.as_ref().expect("training set held");
                let ws = self.workspace.as_ref().expect("capacity ensured");
                let gather = |source: BufferId, output: BufferId, cols: usize| {
                    Op::GatherRows(GatherRows {
                        source: source.region(held.rows * cols),
                        order: held.order.region(held.rows),
                        cursor: held.cursor.region(1),
                        output: output.region(rows * cols),
                        rows,
                        cols,
                    })
                };
                let cursor = held.cursor.region(1);
                vec![
                    gather(held.inputs, ws.input, self.network.inputs()),
                    gather(held.targets, ws.target, self.target_width()),
                    Op::AdvanceCursor(AdvanceCursor { cursor, rows }),
                ]
            }
        };
        let kernels = ops
            .iter()
            .map(|op| self.backend.prepare(op))
            .collect::<Result<Vec<_>>>()?;
        self.plans.insert((plan, rows), kernels.clone());
        Ok(kernels)
    }
}
