//! Training from a training set held on the device: it is uploaded once, each epoch writes only its row
//! order, every step gathers its batch there (`gather_rows`), and [`STEPS_PER_SUBMIT`] steps go to the
//! device in one submission.

use super::{HeldData, Model, Plan};
use crate::error::{Error, Result};
use crate::model::train::{EpochStats, TrainConfig};

/// Training steps recorded into one queue submission when the data is held on the device. More steps per
/// submission cost nothing on the device and spread the submission's fixed host cost; 16 keeps an epoch's
/// progress visible to the driver's scheduling without one huge command buffer.
pub const STEPS_PER_SUBMIT: usize = 16;

impl Model {
    /// Copies a training set to the device so [`Model::train_epoch_held`] can gather its batches there.
    /// Returns `false`, holding nothing, when the inputs or targets would not fit one storage binding of the
    /// adapter (use [`Model::train_epoch`] then). Replaces a set held before.
    pub fn hold_training_set(&mut self, inputs: &[f32], targets: &[f32]) -> Result<bool> {
        let rows = self.check_data(inputs, Some(targets))?;
        self.release_training_set()?;
        if u32::try_from(rows).is_err()
            || inputs.len().max(targets.len()) > self.backend.max_binding_len()
        {
            return Ok(false);
        }
        let inputs_buffer = self.backend.alloc("held inputs", inputs.len())?;
        let targets_buffer = self.backend.alloc("held targets", targets.len())?;
        let order = self.backend.alloc("held row order", rows)?;
        let cursor = self.backend.alloc("held cursor", 1)?;
        self.held = Some(HeldData {
            inputs: inputs_buffer,
            targets: targets_buffer,
            order,
            cursor,
            rows,
        });
        self.backend.write(inputs_buffer, 0, inputs)?;
        self.backend.write(targets_buffer, 0, targets)?;
        Ok(true)
    }

    /// Frees the training set [`Model::hold_training_set`] copied to the device, if any.
    pub fn release_training_set(&mut self) -> Result<()> {
        if let Some(held) = self.held.take() {
            self.plans.retain(|(plan, _), _| *plan != Plan::Gather);
            for buffer in [held.inputs, held.targets, held.order, held.cursor] {
                self.backend.free(buffer)?;
            }
        }
        Ok(())
    }

    /// Rows of the training set held on the device (`None` when none is).
    pub fn held_rows(&self) -> Option<usize> {
        self.held.as_ref().map(|h| h.rows)
    }

    /// [`Model::train_epoch`] over the held training set: the same steps in the same order, with the
    /// batches gathered on the device and [`STEPS_PER_SUBMIT`] steps per submission.
    pub fn train_epoch_held(
        &mut self,
        order: Option<&[usize]>,
        config: &TrainConfig,
    ) -> Result<EpochStats> {
        let Some(held) = self.held.as_ref() else {
            return Err(Error::value(
                "training set",
                "held on the device first (Model::hold_training_set)",
            ));
        };
        let (rows, order_buffer, cursor) = (held.rows, held.order, held.cursor);
        let epoch = self.begin_epoch(rows, order, config, true)?;
        let (batch, full, last) = (epoch.batch, epoch.full, epoch.last);
        let mut bits = std::mem::take(&mut self.scratch.0);
        bits.clear();
        bits.extend((0..rows).map(|p| f32::from_bits(order.map_or(p, |o| o[p]) as u32)));
        let written = self
            .backend
            .write(order_buffer, 0, &bits)
            .and_then(|()| self.backend.write(cursor, 0, &[f32::from_bits(0)]));
        self.scratch.0 = bits;
        written?;
        let steps = rows.div_ceil(batch);
        for step in 0..steps {
            self.enqueue_only(if step + 1 < steps { &full } else { &last })?;
            self.count_step();
            // The last steps ride along with the read of the epoch's sums.
            if (step + 1) % STEPS_PER_SUBMIT == 0 && step + 1 < steps {
                self.backend.submit()?;
            }
        }
        self.read_stats(rows)
    }
}
