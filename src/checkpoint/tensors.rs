//! Reading checkpoint files: the bytes (header first, checked against the file's size), the tensor names a
//! network has in either format, and the tensors in wgtrain's layouts.

use crate::error::{Error, Result};
use crate::layers::ParamSpec;
use crate::network::{LayerParams, Network};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// The bytes of a checkpoint file; anything but a regular file (a device, a FIFO) is refused, so an
/// endless source cannot be read into memory.
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let meta = crate::files::regular_file(path, "a safetensors file")?;
    if let Some(available) = crate::memory::host_available_bytes() {
        if meta.len() > available {
            return Err(Error::Memory(format!(
                "{}: the file is {}, more than the host's {} available",
                path.display(),
                crate::memory::human_bytes(meta.len().into()),
                crate::memory::human_bytes(available.into())
            )));
        }
    }
    let mut file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    // The header first: its length, then the tensors' extent, checked against the file's size before
    // the rest is read, so a huge or padded file is refused without reading it.
    let mut bytes = Vec::new();
    (&mut file)
        .take(8)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::file(path, e))?;
    if bytes.len() < 8 {
        return Err(Error::format(
            path,
            "not a safetensors file: shorter than its 8-byte header length",
        ));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if header_len > MAX_HEADER_BYTES || 8 + header_len > meta.len() {
        return Err(Error::format(
            path,
            format!(
                "not a safetensors file: a header of {header_len} bytes in a file of {}",
                meta.len()
            ),
        ));
    }
    (&mut file)
        .take(header_len)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::file(path, e))?;
    let data_len = tensor_extent(&bytes[8..]).ok_or_else(|| {
        Error::format(
            path,
            "not a safetensors file: its header is not a tensor table",
        )
    })?;
    let expected = 8 + header_len + data_len;
    if expected != meta.len() {
        return Err(Error::format(
            path,
            format!(
                "not a safetensors file: the header describes {expected} bytes, but the file holds {}",
                meta.len()
            ),
        ));
    }
    bytes.try_reserve_exact(data_len as usize).map_err(|_| {
        Error::Memory(format!(
            "{}: the file does not fit in memory",
            path.display()
        ))
    })?;
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::file(path, e))?;
    Ok(bytes)
}

/// safetensors' own limit on its JSON header.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The end of the last tensor's bytes in a safetensors header (`data_offsets` of every entry but
/// `__metadata__`), or `None` when the header is not such a table.
fn tensor_extent(header: &[u8]) -> Option<u64> {
    let table: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut end = 0;
    for (name, entry) in &table {
        if name == "__metadata__" {
            continue;
        }
        let offsets = entry.get("data_offsets")?.as_array()?;
        end = end.max(offsets.get(1)?.as_u64()?);
    }
    Some(end)
}

/// `values` as `[rows, cols]` row-major, transposed to `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    crate::ops::layout::transpose_batched(values, &mut out, rows, cols);
    out
}

/// One tensor of a network in PyTorch's layout, as a checkpoint stores it (and an exporter needs it).
pub struct TorchTensor {
    /// The layer's index in the network.
    pub layer: usize,
    /// The tensor's PyTorch name in its layer, its shape and how wgtrain stores it.
    pub spec: ParamSpec,
    /// Row-major in `spec.torch_shape`.
    pub values: Vec<f32>,
}

impl TorchTensor {
    /// Its name in a checkpoint: `layers.{i}.{name}`, `i` counting every layer as `nn.Sequential` does.
    pub fn name(&self) -> String {
        format!("layers.{}.{}", self.layer, self.spec.name)
    }
}

/// Every parameter and state tensor of `network` from `params` (one entry per layer with parameters), in
/// PyTorch's layout; an error names a tensor whose size does not match.
pub fn torch_tensors(network: &Network, params: &[LayerParams]) -> Result<Vec<TorchTensor>> {
    layer_tensors(network, params, true)
}

/// Gradients in PyTorch's layout: [`torch_tensors`] of the trained parameters alone (running statistics
/// have no gradient), from one entry per layer with parameters whose `state` is empty.
pub fn torch_gradients(network: &Network, grads: &[LayerParams]) -> Result<Vec<TorchTensor>> {
    layer_tensors(network, grads, false)
}

fn layer_tensors(
    network: &Network,
    params: &[LayerParams],
    with_state: bool,
) -> Result<Vec<TorchTensor>> {
    let indices = network.parametrised_layers();
    if params.len() != indices.len() {
        return Err(Error::shape(
            "parameters",
            format!("{} layers with parameters", indices.len()),
            params.len(),
        ));
    }
    let mut tensors = Vec::new();
    for (layer, &i) in params.iter().zip(&indices) {
        let state_specs = if with_state {
            network.state(i)
        } else {
            Vec::new()
        };
        if layer.state.len() != state_specs.len() {
            return Err(Error::shape(
                format!("layer {i} state"),
                format!("{} tensors", state_specs.len()),
                layer.state.len(),
            ));
        }
        let values = [&layer.weights, &layer.bias]
            .into_iter()
            .chain(&layer.state);
        let specs = if with_state {
            tensors_of(network, i)
        } else {
            network.params(i)
        };
        for (spec, values) in specs.into_iter().zip(values) {
            if values.len() as u128 != spec.len() {
                return Err(Error::shape(
                    format!("layer {i} {}", spec.name),
                    spec.len(),
                    values.len(),
                ));
            }
            let values = if spec.transposed {
                // stored [in…, out], PyTorch's [out, in…]
                let rest: usize = spec.torch_shape[1..].iter().product();
                transpose(values, rest, spec.torch_shape[0])
            } else {
                values.clone()
            };
            tensors.push(TorchTensor {
                layer: i,
                spec,
                values,
            });
        }
    }
    Ok(tensors)
}

/// How tensors are numbered: by layer (format 2, as `nn.Sequential` numbers its modules) or by layer with
/// parameters (format 1).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Numbering {
    ByLayer,
    ByParametrisedLayer,
}

/// A layer's parameters, then its state tensors.
fn tensors_of(network: &Network, i: usize) -> Vec<ParamSpec> {
    let mut specs = network.params(i);
    specs.extend(network.state(i));
    specs
}

/// Every tensor name `network` has under `numbering`, with the layer index and the tensor's position in
/// [`tensors_of`].
fn tensor_names(network: &Network, numbering: Numbering) -> Vec<(String, usize, usize)> {
    network
        .parametrised_layers()
        .into_iter()
        .enumerate()
        .flat_map(|(k, i)| {
            let n = if numbering == Numbering::ByLayer {
                i
            } else {
                k
            };
            tensors_of(network, i)
                .into_iter()
                .enumerate()
                .map(move |(j, spec)| (format!("layers.{n}.{}", spec.name), i, j))
        })
        .collect()
}

pub(super) fn read_tensors(
    path: &Path,
    bytes: &[u8],
    network: &Network,
    format: u32,
    has_state: bool,
) -> Result<Vec<LayerParams>> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let mut names = file.names();
    // A training state's tensors lie beside the network's (see `super::state`).
    if has_state {
        names.retain(|n| !n.starts_with(super::state::PREFIX));
    }
    names.sort();
    let fits = |numbering| {
        let expected = tensor_names(network, numbering);
        names
            .iter()
            .all(|n| expected.iter().any(|(e, _, _)| e == *n))
    };
    // Bare tensors (no metadata, `format` 0) may be numbered either way.
    let numbering = match format {
        1 => Numbering::ByParametrisedLayer,
        0 if !fits(Numbering::ByLayer) && fits(Numbering::ByParametrisedLayer) => {
            Numbering::ByParametrisedLayer
        }
        _ => Numbering::ByLayer,
    };
    let expected = tensor_names(network, numbering);
    if let Some(name) = names
        .iter()
        .find(|n| !expected.iter().any(|(e, _, _)| e == **n))
    {
        let listed: Vec<&str> = expected.iter().map(|(e, _, _)| e.as_str()).collect();
        return Err(Error::format(
            path,
            format!(
                "tensor {} is not part of the network (it has {}; a different architecture?)",
                crate::error::quote(name),
                listed.join(", ")
            ),
        ));
    }
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let view = file
            .tensor(name)
            .map_err(|_| Error::format(path, format!("missing tensor {name}")))?;
        // A scalar count (num_batches_tracked) is PyTorch's int64; everything else f32.
        let count = shape.is_empty() && view.dtype() == Dtype::I64;
        if view.dtype() != Dtype::F32 && !count {
            return Err(Error::format(
                path,
                format!("tensor {name} is {:?}, expected F32", view.dtype()),
            ));
        }
        if view.shape() != shape {
            return Err(Error::format(
                path,
                format!(
                    "tensor {name} has shape {:?}, the network needs {shape:?}",
                    view.shape()
                ),
            ));
        }
        let values: Vec<f32> = if count {
            view.data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect()
        } else {
            view.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::format(
                path,
                format!("tensor {name} holds a non-finite value ({v})"),
            ));
        }
        Ok(values)
    };
    let mut layers: Vec<Vec<Vec<f32>>> = vec![Vec::new(); network.layers().len()];
    for (name, i, j) in expected {
        let spec = &tensors_of(network, i)[j];
        let stored = tensor(&name, &spec.torch_shape)?;
        if let Some(v) = stored.iter().find(|&&v| spec.nonnegative && v < 0.0) {
            return Err(Error::format(
                path,
                format!("tensor {name} holds {v}, expected values >= 0"),
            ));
        }
        layers[i].push(if spec.transposed {
            let rest: usize = spec.torch_shape[1..].iter().product();
            transpose(&stored, spec.torch_shape[0], rest)
        } else {
            stored
        });
    }
    Ok(layers
        .into_iter()
        .filter(|tensors| !tensors.is_empty())
        .map(|tensors| {
            let mut tensors = tensors.into_iter();
            LayerParams {
                weights: tensors.next().expect("a weight"),
                bias: tensors.next().expect("a bias"),
                state: tensors.collect(),
            }
        })
        .collect())
}
