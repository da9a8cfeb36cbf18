//! A training run's state in a checkpoint (`--save-state`), so that `--resume` continues it exactly:
//! the optimizer's state tensors and step counters as tensors named `optimizer.*` beside the network's,
//! and in the metadata the history so far, the run's command line and a checksum of its training rows.
//! PyTorch's `load_file` reads such a file too; `load_state_dict(strict=True)` would name the extra
//! tensors, which is why the state is only saved on request.

use super::{parse, read_file, write, ModelMeta};
use crate::error::{Error, Result};
use crate::fit::EpochRecord;
use crate::network::{LayerParams, Network};
use crate::OptimizerState;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The names of a training state's tensors start with this.
pub const PREFIX: &str = "optimizer.";
const COUNTERS: &str = "optimizer.counters";

/// What the metadata keeps of a training run (its tensors are stored apart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingMeta {
    /// The optimizer the state tensors belong to.
    pub optimizer: String,
    /// How many state tensors there are (`optimizer.state.0` …).
    pub state_tensors: usize,
    /// Training steps taken.
    pub steps: u64,
    /// Every epoch so far.
    pub history: Vec<EpochRecord>,
    /// The `train` command line that started the run (after `train`).
    pub command_line: Vec<String>,
    /// CRC-32 of the training split's features and targets as the network saw them, so that a resumed
    /// run can tell it has the same rows.
    pub data_crc32: u32,
}

fn state_name(i: usize) -> String {
    format!("{PREFIX}state.{i}")
}

/// Writes a checkpoint with `state`; `meta.training` describes it.
pub fn save_with_state(
    path: &Path,
    params: &[LayerParams],
    meta: &ModelMeta,
    state: &OptimizerState,
) -> Result<()> {
    let training = meta.training.as_ref().ok_or_else(|| {
        Error::value("training state", "the metadata does not describe the state")
    })?;
    if training.state_tensors != state.buffers.len() || training.optimizer != state.optimizer {
        return Err(Error::value(
            "training state",
            "the metadata does not describe the state",
        ));
    }
    let mut extra: Vec<(String, Vec<f32>)> = state
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| (state_name(i), b.clone()))
        .collect();
    extra.push((COUNTERS.to_string(), state.counters.clone()));
    write(path, params, meta, extra)
}

/// A checkpoint and, when it holds one, its training state.
pub fn load_state(
    path: &Path,
) -> Result<(Network, Vec<LayerParams>, ModelMeta, Option<OptimizerState>)> {
    let bytes = read_file(path)?;
    let (network, params, meta) = parse(path, &bytes)?;
    let Some(training) = &meta.training else {
        return Ok((network, params, meta, None));
    };
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let tensor = |name: &str| -> Result<Vec<f32>> {
        let view = file.tensor(name).map_err(|_| {
            Error::format(path, format!("missing tensor {name} of the training state"))
        })?;
        if view.dtype() != Dtype::F32 || view.shape().len() != 1 {
            return Err(Error::format(
                path,
                format!("tensor {name} is not a vector of F32"),
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let buffers = (0..training.state_tensors)
        .map(|i| tensor(&state_name(i)))
        .collect::<Result<Vec<_>>>()?;
    let state = OptimizerState {
        optimizer: training.optimizer.clone(),
        buffers,
        counters: tensor(COUNTERS)?,
        steps: training.steps,
    };
    Ok((network, params, meta, Some(state)))
}
