//! ONNX export (opset 17): a saved model as one graph that ONNX Runtime (or any ONNX reader) runs, the input
//! preprocessing saved in the checkpoint included, so its first output is what `wgtrain predict` prints.
//!
//! - Input `input`, `[N, columns]` for a table (the checkpoint's source columns in their order) or
//!   `[N, C, H, W]` for an image model, `[N, T, D]` for a sequence model (its dense layers as MatMul and
//!   Add); `N` is dynamic.
//! - A table's missing cells are NaN and are filled as in training; a category column is given as a number,
//!   its category's value when every category is a number, else the category's index in
//!   `wgtrain.inputs` of the metadata; any other value encodes as all zeros (an unseen category).
//! - Outputs: `probabilities` `[N, classes]` and `label` (the index of the largest, int64) for a classifier;
//!   `prediction` `[N, outputs]` in the target's units for regression.

mod graph;
#[doc(hidden)]
pub mod proto;

use crate::checkpoint::{self, ModelMeta};
use crate::data::{ColumnCoding, Encoder, Task};
use crate::error::{Error, Result};
use crate::layers::{Layer, Shape};
use crate::network::{LayerParams, Network};
use crate::Activation;
use graph::{attr_float, attr_int, attr_ints, Graph};
use prost::Message;
use proto::{data_type, ModelProto, OperatorSetIdProto, StringStringEntryProto};
use std::path::Path;

/// The operator set the graph is written against (ONNX 1.12 and later, ONNX Runtime 1.12 and later).
pub const OPSET: i64 = 17;
/// The IR version that goes with [`OPSET`].
const IR_VERSION: i64 = 8;

/// The ONNX model of a saved network, serialised.
pub fn export(network: &Network, params: &[LayerParams], meta: &ModelMeta) -> Result<Vec<u8>> {
    let mut g = Graph::default();
    let tensors = checkpoint::torch_tensors(network, params)?;
    let tensor = |layer: usize, name: &str| -> &[f32] {
        tensors
            .iter()
            .find(|t| t.layer == layer && t.spec.name == name)
            .map_or(&[], |t| t.values.as_slice())
    };
    let tensor_dims = |layer: usize, name: &str| -> Vec<i64> {
        tensors
            .iter()
            .find(|t| t.layer == layer && t.spec.name == name)
            .map_or(Vec::new(), |t| {
                t.spec.torch_shape.iter().map(|&d| d as i64).collect()
            })
    };

    // The input and its preprocessing.
    let sample = network.input_shape();
    let mut x = "input".to_string();
    let input_dims = match (&meta.encoder, sample) {
        (Some(encoder), _) => vec![encoder.columns.len() as i64],
        (None, sample) => sample_dims(sample),
    };
    if let Some(encoder) = &meta.encoder {
        x = encode(&mut g, encoder, &x);
    }
    if let Some(s) = &meta.standardizer {
        let dims = if meta.encoder.is_some() {
            vec![s.mean.len() as i64]
        } else {
            input_dims.clone()
        };
        let mean = g.constant("standardizer.mean", &dims, &s.mean);
        let std = g.constant("standardizer.std", &dims, &s.std);
        let centred = g.node("Sub", &[&x, &mean], vec![]);
        x = g.node("Div", &[&centred, &std], vec![]);
    }
    if let (Some(_), Shape::Image { .. } | Shape::Sequence { .. }) = (&meta.encoder, sample) {
        let dims: Vec<i64> = std::iter::once(-1).chain(sample_dims(sample)).collect();
        let shape = g.constant_i64("input.shape", &[dims.len() as i64], &dims);
        x = g.node("Reshape", &[&x, &shape], vec![]);
    }

    // The layers, in PyTorch's layouts.
    for (i, layer) in network.layers().iter().enumerate() {
        let input = network.input_of(i);
        let p = |name: &str| format!("layers.{i}.{name}");
        x = match *layer {
            Layer::Dense(_) => {
                let w = g.constant(&p("weight"), &tensor_dims(i, "weight"), tensor(i, "weight"));
                let b = g.constant(&p("bias"), &tensor_dims(i, "bias"), tensor(i, "bias"));
                if let Shape::Sequence { .. } = input {
                    // `[N, T, d] · weightᵀ + bias` at every position, as `nn.Linear` on three axes:
                    // Gemm takes matrices only.
                    let wt = g.node("Transpose", &[&w], vec![attr_ints("perm", &[1, 0])]);
                    let product = g.node("MatMul", &[&x, &wt], vec![]);
                    g.node("Add", &[&product, &b], vec![])
                } else {
                    g.node("Gemm", &[&x, &w, &b], vec![attr_int("transB", 1)])
                }
            }
            Layer::Conv2d(c) => {
                let w = g.constant(&p("weight"), &tensor_dims(i, "weight"), tensor(i, "weight"));
                let b = g.constant(&p("bias"), &tensor_dims(i, "bias"), tensor(i, "bias"));
                let (k, s, pad) = (c.kernel as i64, c.stride as i64, c.padding as i64);
                g.node(
                    "Conv",
                    &[&x, &w, &b],
                    vec![
                        attr_ints("kernel_shape", &[k, k]),
                        attr_ints("strides", &[s, s]),
                        attr_ints("pads", &[pad, pad, pad, pad]),
                    ],
                )
            }
            Layer::MaxPool2d(m) => pool(&mut g, "MaxPool", &x, m.kernel, m.stride),
            Layer::AvgPool2d(a) => pool(&mut g, "AveragePool", &x, a.kernel, a.stride),
            Layer::GlobalAvgPool(_) => g.node("GlobalAveragePool", &[&x], vec![]),
            Layer::Flatten(_) => g.node("Flatten", &[&x], vec![attr_int("axis", 1)]),
            // Identity at inference.
            Layer::Dropout(_) => x,
            Layer::BatchNorm(_) => {
                let names = ["weight", "bias", "running_mean", "running_var"];
                let inputs: Vec<String> = names
                    .iter()
                    .map(|n| g.constant(&p(n), &tensor_dims(i, n), tensor(i, n)))
                    .collect();
                let mut all = vec![x.as_str()];
                all.extend(inputs.iter().map(String::as_str));
                g.node(
                    "BatchNormalization",
                    &all,
                    vec![attr_float("epsilon", crate::layers::BATCH_NORM_EPS)],
                )
            }
            Layer::Activation(a) => activation(&mut g, a, &x, input),
        };
    }

    // The outputs.
    let outputs = network.outputs();
    let mut graph_outputs = Vec::new();
    match meta.task {
        Task::Classify => {
            let classes = meta.class_names.len().max(outputs);
            // One sigmoid unit is P(second class): [1 − p, p], as `predict` prints it.
            if outputs == 1 {
                let one = g.constant("one", &[1], &[1.0]);
                let complement = g.node("Sub", &[&one, &x], vec![]);
                x = g.node("Concat", &[&complement, &x], vec![attr_int("axis", 1)]);
            }
            g.rename(&x, "probabilities");
            g.node_named(
                "ArgMax",
                &["probabilities"],
                "label",
                vec![attr_int("axis", 1), attr_int("keepdims", 0)],
            );
            graph_outputs.push(graph::value_info(
                "probabilities",
                data_type::FLOAT,
                &[None, Some(classes as i64)],
                "class probabilities in the order of wgtrain.class_names",
            ));
            graph_outputs.push(graph::value_info(
                "label",
                data_type::INT64,
                &[None],
                "index of the most probable class in wgtrain.class_names",
            ));
        }
        Task::Regress => {
            if let Some(t) = &meta.target_standardizer {
                let dims = [t.mean.len() as i64];
                let std = g.constant("target.std", &dims, &t.std);
                let mean = g.constant("target.mean", &dims, &t.mean);
                let scaled = g.node("Mul", &[&x, &std], vec![]);
                x = g.node("Add", &[&scaled, &mean], vec![]);
            }
            g.rename(&x, "prediction");
            graph_outputs.push(graph::value_info(
                "prediction",
                data_type::FLOAT,
                &[None, Some(outputs as i64)],
                &format!("{} in its own units", meta.target),
            ));
        }
    }

    let dims: Vec<Option<i64>> = std::iter::once(None)
        .chain(input_dims.iter().map(|&d| Some(d)))
        .collect();
    let input = graph::value_info("input", data_type::FLOAT, &dims, &input_doc(meta, sample));
    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "wgtrain".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} of {}: {}",
            task_name(meta.task),
            meta.target,
            network
                .layers()
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        graph: Some(g.finish("wgtrain", input, graph_outputs)),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: metadata(meta, sample)?,
    };
    // Protobuf messages are at most 2 GiB; larger models need ONNX's external data, not written here.
    let len = model.encoded_len();
    if len > i32::MAX as usize {
        return Err(Error::Memory(format!(
            "an ONNX file is one protobuf message of at most 2 GiB, and this model takes {len} bytes ({} parameters)",
            network.parameter_count()
        )));
    }
    Ok(model.encode_to_vec())
}

/// [`export`] of the checkpoint at `model`, written atomically to `out`.
pub fn export_file(model: &Path, out: &Path) -> Result<()> {
    let (network, params, meta) = checkpoint::load(model)?;
    let bytes = export(&network, &params, &meta)?;
    crate::files::write_atomically(out, &bytes)
}

/// A sample's dimensions after the batch: `[n]`, `[C, H, W]` or `[T, d]`.
fn sample_dims(shape: Shape) -> Vec<i64> {
    match shape {
        Shape::Image {
            channels,
            height,
            width,
        } => vec![channels as i64, height as i64, width as i64],
        Shape::Sequence {
            positions,
            features,
        } => vec![positions as i64, features as i64],
        _ => vec![shape.len() as i64],
    }
}

fn pool(g: &mut Graph, op: &str, x: &str, kernel: usize, stride: usize) -> String {
    let (k, s) = (kernel as i64, stride as i64);
    g.node(
        op,
        &[x],
        vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("strides", &[s, s]),
        ],
    )
}

fn activation(g: &mut Graph, a: Activation, x: &str, input: Shape) -> String {
    match a {
        Activation::Linear => x.to_string(),
        Activation::Relu => g.node("Relu", &[x], vec![]),
        Activation::LeakyRelu(slope) => g.node("LeakyRelu", &[x], vec![attr_float("alpha", slope)]),
        Activation::Sigmoid => g.node("Sigmoid", &[x], vec![]),
        Activation::Tanh => g.node("Tanh", &[x], vec![]),
        // Over each sample's values (the network only allows it on a flat output).
        Activation::Softmax => {
            let axis = if matches!(input, Shape::Flat(_)) {
                1
            } else {
                -1
            };
            g.node("Softmax", &[x], vec![attr_int("axis", axis)])
        }
    }
}

/// How a category column is given in the input: by its categories' values when all are distinct numbers.
fn category_values(categories: &[String]) -> Option<Vec<f32>> {
    let values: Vec<f32> = categories
        .iter()
        .map(|c| c.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
        .collect::<Option<_>>()?;
    let mut sorted = values.clone();
    sorted.sort_by(f32::total_cmp);
    sorted.windows(2).all(|w| w[0] != w[1]).then_some(values)
}

/// Each category's code in the input: its value, or its index.
fn category_codes(categories: &[String]) -> Vec<f32> {
    category_values(categories).unwrap_or_else(|| (0..categories.len()).map(|i| i as f32).collect())
}

/// The encoder as nodes: NaN cells filled, then each output column gathered from its source column, a
/// category's column being `source == code`.
fn encode(g: &mut Graph, encoder: &Encoder, x: &str) -> String {
    let mut fill = Vec::new();
    let (mut sources, mut codes, mut is_category) = (Vec::new(), Vec::new(), Vec::new());
    for (c, column) in encoder.columns.iter().enumerate() {
        match column {
            ColumnCoding::Numeric { fill: f, .. } => {
                fill.push(f.unwrap_or(f32::NAN));
                sources.push(c as i64);
                codes.push(0.0);
                is_category.push(false);
            }
            ColumnCoding::Categorical {
                categories,
                fill: f,
                ..
            } => {
                let column_codes = category_codes(categories);
                let filled = f
                    .as_ref()
                    .and_then(|f| categories.iter().position(|c| c == f))
                    .map_or(f32::NAN, |i| column_codes[i]);
                fill.push(filled);
                for &code in &column_codes {
                    sources.push(c as i64);
                    codes.push(code);
                    is_category.push(true);
                }
            }
        }
    }
    let mut x = x.to_string();
    if fill.iter().any(|f| !f.is_nan()) {
        let fill = g.constant("encoder.fill", &[fill.len() as i64], &fill);
        let missing = g.node("IsNaN", &[&x], vec![]);
        x = g.node("Where", &[&missing, &fill, &x], vec![]);
    }
    if !is_category.contains(&true) {
        return x;
    }
    let width = sources.len() as i64;
    let sources = g.constant_i64("encoder.sources", &[width], &sources);
    let codes = g.constant("encoder.codes", &[width], &codes);
    let is_category = g.constant_bool("encoder.is_category", &[width], &is_category);
    let gathered = g.node("Gather", &[&x, &sources], vec![attr_int("axis", 1)]);
    let equal = g.node("Equal", &[&gathered, &codes], vec![]);
    let one_hot = g.node(
        "Cast",
        &[&equal],
        vec![attr_int("to", i64::from(data_type::FLOAT))],
    );
    g.node("Where", &[&is_category, &one_hot, &gathered], vec![])
}

/// What the input holds, for the graph's doc string.
fn input_doc(meta: &ModelMeta, sample: Shape) -> String {
    match (&meta.encoder, sample) {
        (Some(encoder), _) => format!(
            "the columns {} (see wgtrain.inputs); NaN is a missing cell",
            encoder.input_names().join(", ")
        ),
        (None, Shape::Image { .. }) => {
            "images as wgtrain reads them (IDX bytes divided by 255, or the CSV's values)".into()
        }
        (None, _) => format!("the columns {}", meta.feature_names.join(", ")),
    }
}

fn task_name(task: Task) -> &'static str {
    match task {
        Task::Classify => "classification",
        Task::Regress => "regression",
    }
}

/// `wgtrain.*` entries: task, target, classes, and how each input column is given.
fn metadata(meta: &ModelMeta, sample: Shape) -> Result<Vec<StringStringEntryProto>> {
    let json = |v: &serde_json::Value| {
        serde_json::to_string(v).map_err(|e| Error::InvalidValue {
            what: "metadata".into(),
            message: e.to_string(),
        })
    };
    let inputs: Vec<serde_json::Value> = match &meta.encoder {
        Some(encoder) => encoder
            .columns
            .iter()
            .map(|column| match column {
                ColumnCoding::Numeric { name, .. } => {
                    serde_json::json!({ "name": name, "kind": "numeric" })
                }
                ColumnCoding::Categorical {
                    name, categories, ..
                } => serde_json::json!({
                    "name": name,
                    "kind": "categorical",
                    "categories": categories,
                    "given_as": if category_values(categories).is_some() { "value" } else { "index" },
                }),
            })
            .collect(),
        None => meta
            .feature_names
            .iter()
            .map(|name| serde_json::json!({ "name": name, "kind": "numeric" }))
            .collect(),
    };
    let task = task_name(meta.task);
    let entries = [
        ("wgtrain.task", task.to_string()),
        ("wgtrain.target", meta.target.clone()),
        (
            "wgtrain.class_names",
            json(&serde_json::json!(meta.class_names))?,
        ),
        ("wgtrain.inputs", json(&serde_json::Value::Array(inputs))?),
        // The image or sequence shape the input takes after the batch, or null for rows.
        (
            "wgtrain.input_shape",
            json(&match sample {
                Shape::Image { .. } | Shape::Sequence { .. } if meta.encoder.is_none() => {
                    serde_json::json!(sample_dims(sample))
                }
                _ => serde_json::Value::Null,
            })?,
        ),
    ];
    Ok(entries
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key: key.into(),
            value,
        })
        .collect())
}
