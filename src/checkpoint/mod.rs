//! Checkpoints as safetensors files that PyTorch can load: every parameter as `layers.{i}.{name}` in
//! PyTorch's name and layout, `i` the layer's index in the network (activation layers count, as in an
//! `nn.Sequential`), so a dense layer's `layers.{i}.weight` is `[out, in]` as in `nn.Linear`; f32.
//! Everything else about the model is JSON under the metadata key `wgtrain`, its layers as `--arch` tokens.
//! Format 1 files (dense layers with their activations, tensors numbered by dense layer) still load.
//! Writes go through [`crate::files::write_atomically`], so a crash or a failed write leaves the previous
//! checkpoint whole, and identical models give identical bytes.

use crate::activation::Activation;
use crate::data::{Encoder, Standardizer, Task};
use crate::error::{Error, Result};
use crate::layers::{Layer, Shape};
use crate::loss::Loss;
use crate::network::{LayerParams, Network};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tensors::{read_file, read_tensors};
pub use tensors::{torch_gradients, torch_tensors, TorchTensor};

pub mod state;
mod tensors;

/// Version of the metadata layout below. 1: dense layers with their activations; 2: every layer as a
/// token, tensors named by layer index.
pub const FORMAT_VERSION: u32 = 2;
/// The safetensors metadata key holding [`ModelMeta`] as JSON.
pub const META_KEY: &str = "wgtrain";

/// One layer in the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LayerMeta {
    /// Format 2: the layer's `--arch` token (`dense:128`, `relu`), see [`Layer::parse`].
    Token(String),
    /// Format 1: a dense layer and the activation after it.
    Dense(DenseMeta),
}

/// A dense layer in format 1 metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseMeta {
    /// Output features of the layer.
    pub units: usize,
    /// The activation after it, by name (`relu`, `leaky_relu`, `softmax`, …).
    pub activation: String,
    /// Leaky ReLU's slope.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub slope: Option<f32>,
}

/// Everything about a trained model besides its tensors. Unknown fields are refused: a newer layout has a
/// newer `format_version`, and anything else is a file that was edited wrongly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// The metadata layout the file was written in, 1 to [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Floats per input sample, as the network takes them (after any encoder).
    pub inputs: usize,
    /// Channels, height and width of an image input, or positions and features of a sequence (`inputs`
    /// is their product); absent for rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// The network's layers in order: tokens in format 2, dense layers in format 1.
    pub layers: Vec<LayerMeta>,
    /// The loss's name (`mse`, `sse`, `ce`, `bce`).
    pub loss: String,
    /// Whether the model classifies or regresses.
    pub task: Task,
    /// The target column's name; empty when not known.
    pub target: String,
    /// The name of each network input, in input order; empty when not known.
    pub feature_names: Vec<String>,
    /// Applied to inputs before the network, when the model was trained on standardised data.
    pub standardizer: Option<Standardizer>,
    /// A regression model's target as the network was trained on it, standardised: predictions are
    /// mapped back through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_standardizer: Option<Standardizer>,
    /// How the file's columns become inputs, for a table with text columns or missing cells: the
    /// `feature_names` are then its [`Encoder::output_names`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Encoder>,
    /// Class names in output order (empty for regression).
    pub class_names: Vec<String>,
    /// Epochs the parameters were trained for.
    #[serde(default)]
    pub epochs: usize,
    /// The state of the run that wrote the file, for `--resume` (`--save-state`); its tensors are stored
    /// beside the network's, named `optimizer.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<state::TrainingMeta>,
}

impl ModelMeta {
    /// Describes `network`; the data-related fields are the caller's.
    pub fn describe(network: &Network) -> ModelMeta {
        ModelMeta {
            format_version: FORMAT_VERSION,
            inputs: network.inputs(),
            input_shape: match network.input_shape() {
                Shape::Image {
                    channels,
                    height,
                    width,
                } => Some(vec![channels, height, width]),
                Shape::Sequence {
                    positions,
                    features,
                } => Some(vec![positions, features]),
                _ => None,
            },
            layers: network
                .layers()
                .iter()
                .map(|l| LayerMeta::Token(l.to_string()))
                .collect(),
            loss: network.loss().name().to_string(),
            task: Task::Regress,
            target: String::new(),
            feature_names: Vec::new(),
            standardizer: None,
            target_standardizer: None,
            encoder: None,
            class_names: Vec::new(),
            epochs: 0,
            training: None,
        }
    }

    /// The network the metadata describes, after checking that every field agrees with the others; the
    /// error names the field.
    pub fn check(&self) -> std::result::Result<Network, String> {
        use crate::error::quote;
        if !(1..=FORMAT_VERSION).contains(&self.format_version) {
            return Err(format!(
                "format_version {} is not one this wgtrain reads (1 to {FORMAT_VERSION})",
                self.format_version
            ));
        }
        let network = self.network().map_err(|e| format!("layers: {e}"))?;
        let names = &self.feature_names;
        if !names.is_empty() && names.len() != self.inputs {
            return Err(format!(
                "feature_names has {} names for {} inputs",
                names.len(),
                self.inputs
            ));
        }
        if let Some((first, second)) = first_duplicate(names) {
            return Err(format!(
                "feature_names has {} twice (at {} and {})",
                quote(&names[second]),
                first + 1,
                second + 1
            ));
        }
        if let Some(i) = names.iter().position(|n| n.is_empty()) {
            return Err(format!("feature_names has an empty name at {}", i + 1));
        }
        if !self.target.is_empty() && names.contains(&self.target) {
            return Err(format!(
                "target {} is also one of feature_names",
                quote(&self.target)
            ));
        }
        if let Some(encoder) = &self.encoder {
            encoder.check().map_err(|e| format!("encoder: {e}"))?;
            if encoder.output_names() != *names {
                return Err(format!(
                    "encoder gives {} inputs that are not feature_names",
                    encoder.width()
                ));
            }
            if encoder.input_names().contains(&self.target) {
                return Err(format!(
                    "target {} is also one of encoder's columns",
                    quote(&self.target)
                ));
            }
        }
        if let Some(s) = &self.standardizer {
            if s.mean.len() != self.inputs
                || s.std.len() != self.inputs
                || s.mean.iter().any(|v| !v.is_finite())
                || s.std.iter().any(|v| !(v.is_finite() && *v > 0.0))
            {
                return Err(format!(
                    "standardizer does not fit the {} inputs (mean and std need {0} finite values, std > 0)",
                    self.inputs
                ));
            }
        }
        if let Some(s) = &self.target_standardizer {
            if self.task != Task::Regress
                || s.mean.len() != network.outputs()
                || s.std.len() != network.outputs()
                || s.mean.iter().any(|v| !v.is_finite())
                || s.std.iter().any(|v| !(v.is_finite() && *v > 0.0))
            {
                return Err(format!(
                    "target_standardizer does not fit a regression model's {} outputs (finite means, std > 0)",
                    network.outputs()
                ));
            }
        }
        let classes = self.class_names.len();
        let outputs = network.outputs();
        let output = network.output_activation();
        match self.task {
            Task::Classify => {
                let fits = classes == outputs && classes >= 2
                    || classes == 2 && outputs == 1 && output != Activation::Softmax;
                if !fits {
                    return Err(format!(
                        "class_names has {classes} classes, which a classifier with {outputs} {output} output{} cannot give",
                        if outputs == 1 { "" } else { "s" }
                    ));
                }
                // Targets map onto classes by text, else by number: two names of one number are one class.
                let as_numbers: Vec<String> = self
                    .class_names
                    .iter()
                    .map(|c| match c.trim().parse::<f64>() {
                        Ok(0.0) => "0".to_string(),
                        Ok(v) if v.is_finite() => v.to_string(),
                        _ => c.clone(),
                    })
                    .collect();
                if let Some((first, second)) = first_duplicate(&as_numbers) {
                    return Err(format!(
                        "class_names has {} twice (at {} and {})",
                        quote(&self.class_names[second]),
                        first + 1,
                        second + 1
                    ));
                }
            }
            Task::Regress => {
                if classes > 0 {
                    return Err(format!(
                        "task is regress but class_names lists {classes} classes"
                    ));
                }
                if outputs != 1 || output == Activation::Softmax {
                    return Err(format!(
                        "task is regress, which needs one output that is not softmax; the network has {outputs} {output} output{}",
                        if outputs == 1 { "" } else { "s" }
                    ));
                }
            }
        }
        Ok(network)
    }

    /// Rebuilds the network the metadata describes.
    pub fn network(&self) -> Result<Network> {
        let mut builder = match self.input_shape.as_deref() {
            Some(dims) => {
                let shape = match *dims {
                    [channels, height, width] => Shape::Image {
                        channels,
                        height,
                        width,
                    },
                    [positions, features] => Shape::Sequence {
                        positions,
                        features,
                    },
                    _ => {
                        return Err(Error::InvalidNetwork(format!(
                            "input_shape {dims:?}: expected [channels, height, width] or [positions, features]"
                        )))
                    }
                };
                if shape.len() != self.inputs as u128 {
                    return Err(Error::InvalidNetwork(format!(
                        "input_shape {shape} does not hold the {} inputs",
                        self.inputs
                    )));
                }
                Network::builder_for(shape)
            }
            None => Network::builder(self.inputs),
        };
        for (i, layer) in self.layers.iter().enumerate() {
            builder = match (self.format_version, layer) {
                (1, LayerMeta::Dense(dense)) => {
                    let activation = match (dense.activation.parse::<Activation>()?, dense.slope) {
                        (Activation::LeakyRelu(_), Some(slope)) => Activation::LeakyRelu(slope),
                        (activation, _) => activation,
                    };
                    builder.dense(dense.units, activation)
                }
                (1, LayerMeta::Token(_)) => {
                    return Err(Error::InvalidNetwork(format!(
                        "entry {i} is a token, which format_version 1 does not have"
                    )))
                }
                (_, LayerMeta::Token(token)) => {
                    builder.layer(Layer::parse(token).map_err(Error::InvalidNetwork)?)
                }
                (_, LayerMeta::Dense(_)) => {
                    return Err(Error::InvalidNetwork(format!(
                        "entry {i} is a format 1 dense layer; format_version {} lists tokens",
                        self.format_version
                    )))
                }
            };
        }
        builder.build(self.loss.parse::<Loss>()?)
    }

    /// The same metadata in the current format: format 1 layers become tokens.
    pub fn upgraded(&self, network: &Network) -> ModelMeta {
        ModelMeta {
            format_version: FORMAT_VERSION,
            layers: ModelMeta::describe(network).layers,
            ..self.clone()
        }
    }
}

/// The first name that appears twice: the indices of its first and second appearance.
fn first_duplicate(names: &[String]) -> Option<(usize, usize)> {
    // Through a map: a model of 100k feature columns loads in linear time.
    let mut seen = std::collections::HashMap::with_capacity(names.len());
    names
        .iter()
        .enumerate()
        .find_map(|(second, n)| seen.insert(n.as_str(), second).map(|first| (first, second)))
}

/// Writes `params` (one entry per layer with parameters, see [`Network::parametrised_layers`]) and `meta`
/// to `path` atomically, in the current format.
pub fn save(path: &Path, params: &[LayerParams], meta: &ModelMeta) -> Result<()> {
    write(path, params, meta, Vec::new())
}

/// [`save`] plus tensors beyond the network's (a training state's, see [`state`]), named as given.
fn write(
    path: &Path,
    params: &[LayerParams],
    meta: &ModelMeta,
    extra: Vec<(String, Vec<f32>)>,
) -> Result<()> {
    let network = meta.network()?;
    let meta = &meta.upgraded(&network);
    let mut tensors: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
    for tensor in torch_tensors(&network, params)? {
        let spec = &tensor.spec;
        // A scalar buffer (batch norm's num_batches_tracked) is an int64 count in PyTorch.
        let (dtype, bytes) = if spec.torch_shape.is_empty() {
            let counts: Vec<i64> = tensor.values.iter().map(|&v| v as i64).collect();
            (Dtype::I64, bytemuck::cast_slice(&counts).to_vec())
        } else {
            (Dtype::F32, bytemuck::cast_slice(&tensor.values).to_vec())
        };
        tensors.push((tensor.name(), spec.torch_shape.clone(), dtype, bytes));
    }
    for (name, values) in extra {
        let shape = vec![values.len()];
        tensors.push((
            name,
            shape,
            Dtype::F32,
            bytemuck::cast_slice(&values).to_vec(),
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| Error::format(path, format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let json =
        serde_json::to_string(meta).map_err(|e| Error::format(path, format!("metadata: {e}")))?;
    let info = BTreeMap::from([
        (META_KEY.to_string(), json),
        ("format".to_string(), "pt".to_string()),
    ]);
    let mut bytes = safetensors::serialize(views, Some(info.clone().into_iter().collect()))
        .map_err(|e| Error::format(path, e.to_string()))?;
    sort_metadata(&mut bytes, &info).map_err(|e| Error::format(path, e))?;
    crate::files::write_atomically(path, &bytes)
}

/// safetensors writes its `__metadata__` map in `HashMap` order, which changes from one process to the
/// next; this rewrites that map in sorted key order, so identical models give identical files. The map's
/// JSON has the same length in any order, so the header's length and the tensor offsets stay as they are.
fn sort_metadata(
    bytes: &mut [u8],
    info: &BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    let sorted = serde_json::to_string(info).map_err(|e| e.to_string())?;
    let prefix = b"{\"__metadata__\":";
    let start = 8 + prefix.len();
    let end = start + sorted.len();
    let in_header = bytes.get(8..start) == Some(prefix.as_slice()) && end <= bytes.len();
    let found: Option<BTreeMap<String, String>> = in_header
        .then(|| serde_json::from_slice(&bytes[start..end]).ok())
        .flatten();
    if found.as_ref() != Some(info) {
        return Err("safetensors wrote its metadata in an unexpected place".into());
    }
    bytes[start..end].copy_from_slice(sorted.as_bytes());
    Ok(())
}

/// A checkpoint written by [`save`]: the network, its parameters and the metadata.
pub fn load(path: &Path) -> Result<(Network, Vec<LayerParams>, ModelMeta)> {
    parse(path, &read_file(path)?)
}

/// [`load`] on bytes in memory; `path` names them in messages.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Network, Vec<LayerParams>, ModelMeta)> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| Error::format(path, format!("no `{META_KEY}` metadata: not a wgtrain model (use --init to load bare tensors)")))?;
    // serde_path_to_error names the field a wrong value sits in (`layers[1].units: invalid type …`).
    let mut reader = serde_json::Deserializer::from_str(json);
    let meta: ModelMeta = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let what = if inner.is_data() {
            format!("does not describe a model: field `{field}`")
        } else {
            "is not valid JSON".to_string()
        };
        Error::format(
            path,
            format!(
                "`{META_KEY}` metadata {what}: {}",
                crate::error::one_line(&inner)
            ),
        )
    })?;
    let network = meta
        .check()
        .map_err(|message| Error::format(path, format!("`{META_KEY}` metadata: {message}")))?;
    let has_state = meta.training.is_some();
    let params = read_tensors(path, bytes, &network, meta.format_version, has_state)?;
    let meta = meta.upgraded(&network);
    Ok((network, params, meta))
}

/// Parameters for `network` from any safetensors file with its tensor names and shapes (metadata optional),
/// such as one saved from PyTorch; used by `--init`.
pub fn load_parameters(path: &Path, network: &Network) -> Result<Vec<LayerParams>> {
    parse_parameters(path, &read_file(path)?, network)
}

/// A file for `--init`: its bytes (for [`parse_parameters`] once the network is known) and its
/// metadata when it is a wgtrain model (checked like [`load`]); `None` for bare tensors, such as a file
/// written from PyTorch. The file is read once.
pub fn read_init(path: &Path) -> Result<(Vec<u8>, Option<ModelMeta>)> {
    let bytes = read_file(path)?;
    let has_meta = SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref().map(|m| m.contains_key(META_KEY)))
        .unwrap_or(false);
    let meta = if has_meta {
        Some(parse(path, &bytes)?.2)
    } else {
        None
    };
    Ok((bytes, meta))
}

/// The `format_version` of a wgtrain model's metadata, or 0 for bare tensors.
fn format_of(bytes: &[u8]) -> u32 {
    SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref().and_then(|m| m.get(META_KEY).cloned()))
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
        .and_then(|v| v.get("format_version").and_then(|f| f.as_u64()))
        .map_or(0, |f| f as u32)
}

/// [`load_parameters`] on bytes in memory; `path` names them in messages.
pub fn parse_parameters(path: &Path, bytes: &[u8], network: &Network) -> Result<Vec<LayerParams>> {
    read_tensors(path, bytes, network, format_of(bytes), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn model_file(dir: &Path) -> (PathBuf, Vec<LayerParams>, ModelMeta) {
        let network = Network::builder(3)
            .dense(2, Activation::Tanh)
            .dense(1, Activation::Linear)
            .build(Loss::Mse)
            .expect("valid");
        let params = network.init_parameters(4);
        let meta = ModelMeta::describe(&network);
        let path = dir.join("model.safetensors");
        save(&path, &params, &meta).expect("first save");
        (path, params, meta)
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wgtrain-ckpt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    /// A write that fails half-way (a full disk, say) leaves the previous checkpoint whole and loadable, and
    /// no temporary file behind.
    #[test]
    fn a_save_that_fails_part_way_leaves_the_previous_file() {
        let dir = scratch("partial");
        let (path, params, _) = model_file(&dir);
        let before = std::fs::read(&path).expect("read");
        let result = crate::files::write_atomically_with(&path, |file| {
            file.write_all(&before[..before.len() / 2])?;
            Err(std::io::Error::other("no space left on device"))
        });
        let err = result.expect_err("the write failed");
        assert!(
            matches!(err, Error::File { .. }) && err.to_string().contains("no space left"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert_eq!(load(&path).expect("still loads").1, params);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(
            names,
            ["model.safetensors"],
            "the temporary file is removed"
        );
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = scratch("round");
        let (path, params, meta) = model_file(&dir);
        let (network, loaded, loaded_meta) = load(&path).expect("load");
        assert_eq!((loaded, loaded_meta), (params, meta));
        assert_eq!(network.parameter_count(), 3 * 2 + 2 + 2 + 1);
    }
}
