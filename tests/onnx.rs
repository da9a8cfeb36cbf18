//! `wgtrain export`: the ONNX file's structure read back with the exporter's own messages, and — where
//! Python has `onnx` and `onnxruntime` (`scripts/test.sh` makes a venv with them and names its Python in
//! `WGTRAIN_ONNX_PYTHON`) — onnx.checker's verdict and ONNX Runtime's outputs against `wgtrain predict`
//! (`scripts/onnx_check.py`), for every layer kind and every kind of input preprocessing.

mod common;

use common::cli::*;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use wgtrain::onnx::proto::{dimension, ModelProto};

/// Largest difference allowed between ONNX Runtime and `predict`, relative where a value is above 1.
const ONNX_TOLERANCE: &str = "1e-4";

/// A Python that imports onnx and onnxruntime, or why there is none.
fn python() -> Result<PathBuf, String> {
    let python = std::env::var_os("WGTRAIN_ONNX_PYTHON").map_or("python3".into(), PathBuf::from);
    let probe = Command::new(&python)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{} cannot import onnx, onnxruntime and numpy ({})",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("no {} ({e})", python.display())),
    }
}

/// Trains `train` (arguments after `train`), exports it, predicts `data` and has ONNX Runtime check the
/// file against the predictions; returns the ONNX bytes.
fn export_and_check(dir: &Path, name: &str, train: &[&str], data: &str) -> Vec<u8> {
    let model = dir.join(format!("{name}.safetensors"));
    let onnx = dir.join(format!("{name}.onnx"));
    let (model_s, onnx_s) = (model.to_str().unwrap(), onnx.to_str().unwrap());
    let mut args = vec!["train", "--device", "cpu", "--quiet", "--out", model_s];
    args.extend(train);
    ok(&args);
    let out = ok(&["export", "--model", model_s, "--onnx", onnx_s]);
    assert!(out.contains(onnx_s), "{out}");
    let predictions = ok(&[
        "predict", "--model", model_s, "--data", data, "--device", "cpu",
    ]);
    let predicted = dir.join(format!("{name}-predict.csv"));
    std::fs::write(&predicted, predictions).unwrap();
    match python() {
        Ok(python) => {
            let check = Command::new(python)
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/onnx_check.py"
                ))
                .args([onnx_s, data, predicted.to_str().unwrap()])
                .args(["--tolerance", ONNX_TOLERANCE])
                .output()
                .expect("run onnx_check.py");
            let said = String::from_utf8_lossy(&check.stdout).into_owned()
                + &String::from_utf8_lossy(&check.stderr);
            eprintln!("{name}: {said}");
            assert!(check.status.success(), "{name}: ONNX check failed: {said}");
            assert!(said.contains("onnx.checker: ok"), "{said}");
        }
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI needs onnx and onnxruntime for the ONNX tests: {why}")
        }
        Err(why) => eprintln!("SKIPPED: ONNX Runtime check of {name}: {why}"),
    }
    std::fs::read(&onnx).unwrap()
}

fn decode(bytes: &[u8]) -> ModelProto {
    ModelProto::decode(bytes).expect("the exported file decodes as a ModelProto")
}

/// The graph input's or output's dimensions: `None` for the dynamic batch.
fn dims(info: &wgtrain::onnx::proto::ValueInfoProto) -> Vec<Option<i64>> {
    let shape = info
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .expect("a tensor shape");
    shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(dimension::Value::DimValue(n)) => Some(*n),
            Some(dimension::Value::DimParam(p)) => {
                assert_eq!(p, "N");
                None
            }
            None => panic!("a dimension without a value"),
        })
        .collect()
}

fn metadata(model: &ModelProto, key: &str) -> String {
    model
        .metadata_props
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("no {key} in metadata_props"))
        .value
        .clone()
}

fn ops(model: &ModelProto) -> Vec<String> {
    let graph = model.graph.as_ref().unwrap();
    graph.node.iter().map(|n| n.op_type.clone()).collect()
}

#[test]
fn tabular_models_export_with_their_preprocessing() {
    let dir = scratch("onnx-tables");
    let penguins_train = format!("{DATA}/penguins-train.csv");
    let penguins_test = format!("{DATA}/penguins-test.csv");

    // Text and integer-coded categories, missing cells filled with the mode, standardised inputs.
    let species = decode(&export_and_check(
        &dir,
        "species",
        &[
            "--data",
            &penguins_train,
            "--target",
            "species",
            "--missing",
            "mode",
            "--categorical",
            "year",
            "--epochs",
            "5",
        ],
        &penguins_test,
    ));
    assert_eq!(species.opset_import[0].version, wgtrain::onnx::OPSET);
    assert!(species.opset_import[0].version >= 17);
    let graph = species.graph.as_ref().unwrap();
    assert_eq!(graph.input.len(), 1);
    // island, four measurements, sex, year: the file's feature columns.
    assert_eq!(dims(&graph.input[0]), vec![None, Some(7)]);
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["probabilities", "label"]);
    assert_eq!(dims(&graph.output[0]), vec![None, Some(3)]);
    assert_eq!(
        metadata(&species, "wgtrain.class_names"),
        r#"["Adelie","Chinstrap","Gentoo"]"#
    );
    assert_eq!(metadata(&species, "wgtrain.target"), "species");
    let inputs: serde_json::Value =
        serde_json::from_str(&metadata(&species, "wgtrain.inputs")).unwrap();
    assert_eq!(inputs[0]["name"], "island");
    assert_eq!(inputs[0]["given_as"], "index");
    assert_eq!(inputs[6]["name"], "year");
    assert_eq!(inputs[6]["given_as"], "value");
    assert_eq!(
        ops(&species)[..6],
        ["IsNaN", "Where", "Gather", "Equal", "Cast", "Where"]
    );

    // Regression: standardised inputs and target, the target mapped back in the graph.
    let width = decode(&export_and_check(
        &dir,
        "petal-width",
        &[
            "--data",
            &iris(),
            "--target",
            "petal_width",
            "--epochs",
            "20",
        ],
        &iris(),
    ));
    let graph = width.graph.as_ref().unwrap();
    assert_eq!(graph.output.len(), 1);
    assert_eq!(graph.output[0].name, "prediction");
    assert_eq!(dims(&graph.output[0]), vec![None, Some(1)]);
    assert_eq!(ops(&width).last().unwrap(), "Add");
    assert_eq!(metadata(&width, "wgtrain.task"), "regression");

    // A binary classifier's one sigmoid unit becomes two probability columns.
    let cancer = format!("{DATA}/breast_cancer.csv");
    let binary = decode(&export_and_check(
        &dir,
        "binary",
        &[
            "--data",
            &cancer,
            "--layers",
            "8",
            "--activation",
            "tanh",
            "--epochs",
            "3",
        ],
        &cancer,
    ));
    let graph = binary.graph.as_ref().unwrap();
    assert_eq!(dims(&graph.output[0]), vec![None, Some(2)]);
    assert!(ops(&binary).contains(&"Sigmoid".to_string()));
    assert!(ops(&binary).contains(&"Tanh".to_string()));
    assert!(!ops(&binary).contains(&"IsNaN".to_string()));
}

#[test]
fn convolutional_models_export_every_layer_kind() {
    let dir = scratch("onnx-cnn");
    let digits = format!("{DATA}/digits.csv");
    let cnn = decode(&export_and_check(
        &dir,
        "cnn",
        &[
            "--data",
            &digits,
            "--input-shape",
            "1,8,8",
            "--arch",
            "conv:4:3:pad=1,batchnorm,relu,maxpool:2,dropout:0.25,flatten,dense:16,batchnorm,relu,dropout:0.1,dense:10",
            "--epochs",
            "2",
        ],
        &digits,
    ));
    let graph = cnn.graph.as_ref().unwrap();
    assert_eq!(dims(&graph.input[0]), vec![None, Some(1), Some(8), Some(8)]);
    assert_eq!(
        ops(&cnn),
        [
            "Sub",
            "Div",
            "Conv",
            "BatchNormalization",
            "Relu",
            "MaxPool",
            "Flatten",
            "Gemm",
            "BatchNormalization",
            "Relu",
            "Gemm",
            "Softmax",
            "ArgMax"
        ]
    );
    // Images as they are, strides, leaky ReLU, average and global pooling.
    let other = decode(&export_and_check(
        &dir,
        "cnn-pools",
        &[
            "--data",
            &digits,
            "--input-shape",
            "1,8,8",
            "--no-standardize",
            "--arch",
            "conv:4:3:stride=2,leaky_relu:0.1,avgpool:2:stride=1,conv:6:2,tanh,gap,flatten,dense:10",
            "--epochs",
            "1",
        ],
        &digits,
    ));
    let found = ops(&other);
    assert_eq!(found[0], "Conv", "no standardisation: {found:?}");
    for op in ["LeakyRelu", "AveragePool", "GlobalAveragePool", "Tanh"] {
        assert!(found.iter().any(|o| o == op), "{op} missing from {found:?}");
    }
}

/// A sequence model (`--input-shape T,D`): its input `[N, T, D]`, standardised per position and feature,
/// dense layers over it as MatMul and Add (Gemm takes matrices), and ONNX Runtime agreeing with `predict`.
#[test]
fn sequence_models_export_their_dense_layers_as_matmul() {
    let dir = scratch("onnx-sequence");
    let model = decode(&export_and_check(
        &dir,
        "sequence",
        &[
            "--data",
            &iris(),
            "--input-shape",
            "2,2",
            "--arch",
            "dense:6,tanh,dense:5,relu,flatten,dense:3",
            "--epochs",
            "5",
        ],
        &iris(),
    ));
    let graph = model.graph.as_ref().unwrap();
    assert_eq!(dims(&graph.input[0]), vec![None, Some(2), Some(2)]);
    assert_eq!(metadata(&model, "wgtrain.input_shape"), "[2,2]");
    assert_eq!(
        ops(&model),
        [
            "Sub",
            "Div",
            "Transpose",
            "MatMul",
            "Add",
            "Tanh",
            "Transpose",
            "MatMul",
            "Add",
            "Relu",
            "Flatten",
            "Gemm",
            "Softmax",
            "ArgMax"
        ]
    );
}

#[test]
fn export_refuses_bad_paths_and_files() {
    let dir = scratch("onnx-bad");
    let model = dir.join("m.safetensors");
    let m = model.to_str().unwrap();
    ok(&strs(&train_cpu(&iris(), &["--out", m])));
    let before = snapshot(&[&model]);
    // The model itself as the output, a directory, a missing model, a file that is not a checkpoint.
    fails(&["export", "--model", m, "--onnx", m], &["--onnx"]);
    let folder = dir.join("folder.onnx");
    std::fs::create_dir(&folder).unwrap();
    fails(
        &["export", "--model", m, "--onnx", folder.to_str().unwrap()],
        &["--onnx", "directory"],
    );
    let missing = dir.join("missing.safetensors");
    let onnx = dir.join("m.onnx");
    fails(
        &[
            "export",
            "--model",
            missing.to_str().unwrap(),
            "--onnx",
            onnx.to_str().unwrap(),
        ],
        &["missing.safetensors"],
    );
    fails(
        &[
            "export",
            "--model",
            &iris(),
            "--onnx",
            onnx.to_str().unwrap(),
        ],
        &["iris.csv"],
    );
    assert!(!onnx.exists(), "no file is written for a failed export");
    assert_eq!(snapshot(&[&model]), before, "the model is untouched");
}
