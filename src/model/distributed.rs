//! The model's side of data-parallel training: starting every rank from rank 0's parameters, an epoch whose
//! steps sum the ranks' gradients before one identical update, and evaluation shared among the ranks.

use super::train::{batch_rows, check_order};
use super::{EpochStats, Model, Plan, TrainConfig};
use crate::backend::STATS_LEN;
use crate::distributed::{rank_share, rank_slice, Collective};
use crate::error::Result;
use crate::loss::Loss;
use crate::network::LayerParams;

impl Model {
    /// Makes every rank's parameters and running statistics rank 0's (one broadcast).
    pub fn broadcast_parameters(&mut self, comm: &dyn Collective) -> Result<()> {
        let layers = self.parameters()?;
        let mut flat = LayerParams::flatten(&layers, true);
        comm.broadcast(&mut flat)?;
        self.set_parameters(&LayerParams::unflatten(&flat, &layers, true))
    }

    /// One epoch of data-parallel training over the whole training set, which every rank holds in full and
    /// visits in the same `order`: each global batch of `batch_size × ranks` rows is split into runs of
    /// `batch_size`, rank r taking the r-th. Each step computes this rank's gradient, reads it back, sums
    /// it with the other ranks' (each scaled by its share of the loss's normaliser: rows, elements or
    /// class weights) in one allreduce of one buffer, writes the global batch's gradient back and runs the
    /// update, identical on every rank. The epoch's loss and accuracy are summed over the ranks.
    pub fn train_epoch_distributed(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
        order: Option<&[usize]>,
        config: &TrainConfig,
        comm: &dyn Collective,
    ) -> Result<EpochStats> {
        let rows = self.check_data(inputs, Some(targets))?;
        check_order(order, rows)?;
        let batch = batch_rows(config, rows)?;
        let global = batch * comm.size().max(1);
        self.set_config(config)?;
        self.ensure_capacity(batch)?;
        self.reset_stats()?;
        let gradients = Plan::Gradients(self.weighting_key());
        let update = match config.plan(self.weighting_key()) {
            Plan::Train(name, clip_norm, clipped, _) => Plan::Update(name, clip_norm, clipped),
            other => other,
        };
        let (n_in, n_target) = (self.network.inputs(), self.target_width());
        let len = self.param_len;
        let mut buffer = vec![0.0f32; len + 1];
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for start in (0..rows).step_by(global) {
            let mine = rank_slice(start..(start + global).min(rows), batch, comm.rank());
            buffer.iter_mut().for_each(|v| *v = 0.0);
            if !mine.is_empty() {
                xs.clear();
                ys.clear();
                for position in mine.clone() {
                    let row = order.map_or(position, |o| o[position]);
                    xs.extend_from_slice(&inputs[row * n_in..(row + 1) * n_in]);
                    ys.extend_from_slice(&targets[row * n_target..(row + 1) * n_target]);
                }
                self.upload(&xs, &ys)?;
                let kernels = self.plan(gradients, mine.len())?;
                self.run(&kernels)?;
                let grads = self.backend.read(self.param_grads.region(len))?;
                let share = self.normaliser(&ys, mine.len());
                for (b, g) in buffer.iter_mut().zip(&grads) {
                    *b = g * share;
                }
                buffer[len] = share;
            }
            comm.allreduce_sum(&mut buffer)?;
            // A sum loss (sse) adds the ranks' gradients; a mean divides by the global normaliser.
            let divisor = match self.network.loss() {
                Loss::Sse => 1.0,
                _ => buffer[len],
            };
            if divisor > 0.0 {
                buffer[..len].iter_mut().for_each(|g| *g /= divisor);
            }
            self.backend.write(self.param_grads, 0, &buffer[..len])?;
            let kernels = self.plan(update, 0)?;
            self.run(&kernels)?;
            self.count_step();
        }
        self.reduced_stats(comm, rows)
    }

    /// What this rank's gradient is divided by inside the loss (rows, elements, or the rows' class
    /// weights); 1 for a sum.
    fn normaliser(&self, targets: &[f32], rows: usize) -> f32 {
        let (loss, outputs) = (self.network.loss(), self.network.outputs());
        if let (Some(weights), true) = (&self.host_class_weights, self.weighting.is_some()) {
            return targets
                .iter()
                .map(|&c| weights.get(c as usize).copied().unwrap_or(0.0))
                .sum();
        }
        1.0 / loss.scale(rows, outputs)
    }

    /// The running sums summed over the ranks, as the epoch's statistics over `rows` rows.
    fn reduced_stats(&mut self, comm: &dyn Collective, rows: usize) -> Result<EpochStats> {
        let local = self.backend.read(self.stats.region(STATS_LEN))?;
        let mut stats = local.clone();
        comm.allreduce_sum(&mut stats)?;
        // The first non-finite step: this rank's if it saw one, else the others' (exact when one did).
        if local[4] > 0.0 {
            stats[4] = local[4];
        }
        Ok(self.stats_of(&stats, rows))
    }

    /// [`Model::evaluate`] (and with `confusion` the confusion counts) shared among the ranks: each
    /// evaluates its contiguous share of the rows, and the sums and counts are added up in one allreduce.
    /// Every rank gets the whole set's figures.
    pub fn evaluate_distributed(
        &mut self,
        inputs: &[f32],
        targets: &[f32],
        confusion: bool,
        comm: &dyn Collective,
    ) -> Result<(EpochStats, Option<Vec<Vec<usize>>>)> {
        let rows = self.check_data(inputs, Some(targets))?;
        let share = rank_share(rows, comm.rank(), comm.size());
        let (n_in, n_target) = (self.network.inputs(), self.target_width());
        let classes = self.network.outputs().max(2);
        let cells = if confusion { classes * classes } else { 0 };
        let mut sums = vec![0.0f32; STATS_LEN + cells];
        if !share.is_empty() {
            let x = &inputs[share.start * n_in..share.end * n_in];
            let y = &targets[share.start * n_target..share.end * n_target];
            if confusion {
                let (_, counts) = self.evaluate_with_confusion_checked(share.len(), x, y)?;
                for (cell, count) in sums[STATS_LEN..].iter_mut().zip(counts.iter().flatten()) {
                    *cell = *count as f32;
                }
            } else {
                self.run_evaluation(Plan::Evaluate, share.len(), x, y)?;
            }
            let stats = self.backend.read(self.stats.region(STATS_LEN))?;
            sums[..STATS_LEN].copy_from_slice(&stats);
        }
        comm.allreduce_sum(&mut sums)?;
        let stats = self.stats_of(&sums[..STATS_LEN], rows);
        let counts = confusion.then(|| {
            sums[STATS_LEN..]
                .chunks(classes)
                .map(|row| row.iter().map(|&v| v.round() as usize).collect())
                .collect()
        });
        Ok((stats, counts))
    }
}
