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
/// The latest parameters, flattened layer by layer, when the file's own are early stopping's best.
const CURRENT: &str = "optimizer.current";

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
    /// Data-parallel ranks the run trained on (1 alone): its global batch is this many of `--batch-size`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub ranks: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn state_name(i: usize) -> String {
    format!("{PREFIX}state.{i}")
}

/// A saved run's state (see [`load_state`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SavedRun {
    /// The optimizer's state tensors and step counters, for [`crate::Model::restore_optimizer_state`].
    pub state: OptimizerState,
    /// The parameters to continue from, when the file's own are early stopping's best so far.
    pub current: Option<Vec<LayerParams>>,
}

/// Writes a checkpoint with `state`; `meta.training` describes it. `current`: the parameters to continue
/// from, when `params` (what the file holds as the model) are early stopping's best so far.
pub fn save_with_state(
    path: &Path,
    params: &[LayerParams],
    meta: &ModelMeta,
    state: &OptimizerState,
    current: Option<&[LayerParams]>,
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
    if let Some(current) = current {
        let mut flat = Vec::new();
        for layer in current {
            flat.extend_from_slice(&layer.weights);
            flat.extend_from_slice(&layer.bias);
            layer.state.iter().for_each(|s| flat.extend_from_slice(s));
        }
        extra.push((CURRENT.to_string(), flat));
    }
    write(path, params, meta, extra)
}

/// A checkpoint and, when it holds one, its training state.
pub fn load_state(path: &Path) -> Result<(Network, Vec<LayerParams>, ModelMeta, Option<SavedRun>)> {
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
    // The latest parameters, laid out as the file's own.
    let current = match file.tensor(CURRENT) {
        Err(_) => None,
        Ok(_) => {
            let flat = tensor(CURRENT)?;
            let mut values = flat.iter().copied();
            let mut take = |n: usize| values.by_ref().take(n).collect::<Vec<f32>>();
            let layers: Vec<LayerParams> = params
                .iter()
                .map(|p| LayerParams {
                    weights: take(p.weights.len()),
                    bias: take(p.bias.len()),
                    state: p.state.iter().map(|s| take(s.len())).collect(),
                })
                .collect();
            let expected: usize = params
                .iter()
                .map(|p| {
                    p.weights.len() + p.bias.len() + p.state.iter().map(Vec::len).sum::<usize>()
                })
                .sum();
            if flat.len() != expected || flat.iter().any(|v| !v.is_finite()) {
                return Err(Error::format(
                    path,
                    format!("tensor {CURRENT} does not hold {expected} finite parameters"),
                ));
            }
            Some(layers)
        }
    };
    Ok((network, params, meta, Some(SavedRun { state, current })))
}
