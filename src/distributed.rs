//! Data-parallel training: every rank holds the whole model and the whole training set, takes its own
//! slice of each global batch, and the ranks' gradients are summed into the global batch's gradient before
//! an update that is then identical on every rank. N ranks with batch B take exactly the steps of one
//! process with batch N·B (see [`crate::Model::train_epoch_distributed`]).
//!
//! [`Collective`] is what that needs from the ranks' communicator; the `mpi` feature provides one over
//! MPI (`wgtrain::mpi`, feature `mpi`), and [`Single`] is the one-rank case.

use crate::error::Result;
use std::ops::Range;

/// Collective operations over the ranks of one job, each called by every rank in the same order.
pub trait Collective: std::fmt::Debug {
    /// This process's index among the ranks, from 0.
    fn rank(&self) -> usize;
    /// How many ranks there are.
    fn size(&self) -> usize;
    /// Replaces `values` on every rank with their elementwise sum over all ranks.
    fn allreduce_sum(&self, values: &mut [f32]) -> Result<()>;
    /// Replaces `values` on every rank with rank 0's.
    fn broadcast(&self, values: &mut [f32]) -> Result<()>;
}

/// One rank alone: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn allreduce_sum(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
}

/// Positions `rank` takes of the global batch `global` (positions in the epoch's row order), with `batch`
/// rows per rank: the `rank`-th run of `batch`, cut at the batch's end. A short last batch leaves the last
/// ranks fewer rows, or none.
pub fn rank_slice(global: Range<usize>, batch: usize, rank: usize) -> Range<usize> {
    let start = (global.start + rank * batch).min(global.end);
    let end = (start + batch).min(global.end);
    start..end
}

/// Rows `rank` evaluates of `rows`: contiguous, as even as possible.
pub fn rank_share(rows: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    (rows * rank / size)..(rows * (rank + 1) / size)
}
