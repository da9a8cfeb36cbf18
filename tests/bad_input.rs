//! Every kind of bad input named in the reliability issue gives a typed error from the library (variant and
//! key words asserted) and, from the CLI, one `error:` line and exit code 2 — never a panic or a hang.

use std::path::{Path, PathBuf};
use std::process::Command;
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::data::{self, CsvOptions};
use wgtrain::{Activation, Error, Loss, Network};

const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv");

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

#[track_caller]
fn expect_err<T: std::fmt::Debug>(
    result: wgtrain::Result<T>,
    variant: fn(&Error) -> bool,
    words: &[&str],
) {
    let err = result.expect_err("bad input must fail");
    assert!(variant(&err), "unexpected variant: {err:?}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    for w in words {
        assert!(message.contains(w), "`{message}` lacks `{w}`");
    }
}

fn is_file(e: &Error) -> bool {
    matches!(e, Error::File { .. })
}
fn is_format(e: &Error) -> bool {
    matches!(e, Error::Format { .. })
}

/// The CLI's side: exit 2 and exactly one stderr line starting `error:` with `words`.
#[track_caller]
fn cli_fails(args: &[&str], words: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .env("NODEVICE_SELECT", "1")
        .env_remove("WGTRAIN_DEVICE")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
    assert!(lines[0].starts_with("error:"), "{}", lines[0]);
    for w in words {
        assert!(lines[0].contains(w), "`{}` lacks `{w}`", lines[0]);
    }
}

fn csv(path: &Path) -> wgtrain::Result<data::Dataset> {
    data::load(path, &CsvOptions::default())
}

#[test]
fn missing_or_unreadable_files() {
    expect_err(
        csv(Path::new("/nonexistent/x.csv")),
        is_file,
        &["/nonexistent/x.csv", "No such file"],
    );
    let dir = scratch().join("a-directory.csv");
    std::fs::create_dir_all(&dir).expect("dir");
    expect_err(csv(&dir), is_file, &["a-directory.csv"]);
    cli_fails(
        &["train", "--data", "/nonexistent/x.csv"],
        &["/nonexistent/x.csv"],
    );
    cli_fails(
        &["train", "--data", dir.to_str().unwrap()],
        &["a-directory.csv"],
    );
}

#[test]
fn empty_headerless_ragged_and_non_numeric_csv() {
    let cases: [(&str, &str, &[&str]); 5] = [
        ("empty.csv", "", &["empty"]),
        ("only-header.csv", "a,b,y\n", &["no data rows"]),
        (
            "ragged.csv",
            "a,b,y\n1,2,x\n1,2\n",
            &["line 3", "2 fields, expected 3"],
        ),
        (
            "cell.csv",
            "a,b,y\n1,2,x\n1,abc,y\n",
            &["line 3", "column `b`", "`abc`"],
        ),
        (
            "nan.csv",
            "a,b,y\n1,2,x\ninf,2,y\n",
            &["line 3", "column `a`", "expected a finite number"],
        ),
    ];
    for (name, text, words) in cases {
        let path = file(name, text.as_bytes());
        expect_err(csv(&path), is_format, words);
        cli_fails(&["train", "--data", path.to_str().unwrap()], words);
    }
}

#[test]
fn unknown_target_single_class_and_too_many_classes() {
    let options = CsvOptions {
        target: Some("colour".into()),
        ..CsvOptions::default()
    };
    expect_err(
        data::load(Path::new(IRIS), &options),
        |e| matches!(e, Error::InvalidValue { .. }),
        &["colour", "species"],
    );
    cli_fails(
        &["train", "--data", IRIS, "--target", "colour"],
        &["colour"],
    );
    let single = file("single.csv", b"a,y\n1,k\n2,k\n");
    expect_err(csv(&single), is_format, &["single class"]);
    cli_fails(
        &["train", "--data", single.to_str().unwrap()],
        &["single class"],
    );
    // A one-unit sigmoid output holds two classes; iris has three.
    cli_fails(
        &["train", "--data", IRIS, "--output", "sigmoid"],
        &["--output", "3 classes"],
    );
}

fn idx(name: &str, images: &[u8], labels: &[u8]) -> PathBuf {
    file(&format!("{name}-labels-idx1-ubyte"), labels);
    file(&format!("{name}-images-idx3-ubyte"), images)
}

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    std::iter::once(magic)
        .chain(dims.iter().copied())
        .flat_map(u32::to_be_bytes)
        .collect()
}

#[test]
fn broken_idx_and_gzip() {
    let labels = [header(0x801, &[2]), vec![0, 1]].concat();
    let good_images = [header(0x803, &[2, 1, 2]), vec![1, 2, 3, 4]].concat();
    // (name, images file, labels file, words the error must contain)
    type Case<'a> = (&'a str, Vec<u8>, Vec<u8>, &'a [&'a str]);
    let cases: [Case; 4] = [
        (
            "magic",
            [header(0x802, &[2, 1, 2]), vec![1, 2, 3, 4]].concat(),
            labels.clone(),
            &["magic number", "0x00000803"],
        ),
        (
            "truncated",
            [header(0x803, &[2, 1, 2]), vec![1, 2, 3]].concat(),
            labels.clone(),
            &["truncated", "expected 4"],
        ),
        (
            "counts",
            good_images.clone(),
            [header(0x801, &[3]), vec![0, 1, 1]].concat(),
            &["3 labels for 2 images"],
        ),
        (
            "gzip",
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad],
            labels.clone(),
            &["corrupt gzip"],
        ),
    ];
    for (name, images, labels, words) in cases {
        let path = idx(name, &images, &labels);
        expect_err(data::load(&path, &CsvOptions::default()), is_format, words);
        cli_fails(&["train", "--data", path.to_str().unwrap()], words);
    }
}

fn small_network() -> Network {
    Network::builder(3)
        .dense(4, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid")
}

fn checkpoint_bytes() -> Vec<u8> {
    let network = small_network();
    let path = scratch().join("good.safetensors");
    let mut meta = ModelMeta::describe(&network);
    meta.class_names = vec!["a".into(), "b".into()];
    meta.task = data::Task::Classify;
    checkpoint::save(&path, &network.init_parameters(0), &meta).expect("save");
    std::fs::read(&path).expect("read")
}

/// A safetensors file with the given tensors (name, dtype, shape) and metadata, written by hand.
fn safetensors(tensors: &[(&str, &str, Vec<usize>)], metadata: Option<&str>) -> Vec<u8> {
    let mut header = String::from("{");
    let mut offset = 0;
    for (name, dtype, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * if *dtype == "F64" { 8 } else { 4 };
        header += &format!("\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{offset},{}]}},", offset + bytes);
        offset += bytes;
    }
    match metadata {
        Some(m) => {
            header += &format!(
                "\"__metadata__\":{{\"wgtrain\":{}}}}}",
                serde_json::to_string(m).expect("json")
            )
        }
        None => {
            header.pop();
            header += "}";
        }
    }
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, offset));
    out
}

#[test]
fn broken_checkpoints() {
    let good = checkpoint_bytes();
    let network = small_network();
    let layer = |w: Vec<usize>, b: Vec<usize>, dtype: &'static str| {
        vec![
            ("layers.0.weight", dtype, w),
            ("layers.0.bias", "F32", b),
            ("layers.1.weight", "F32", vec![2, 4]),
            ("layers.1.bias", "F32", vec![2]),
        ]
    };
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "truncated",
            good[..good.len() - 9].to_vec(),
            &["not a safetensors file"],
        ),
        (
            "not",
            b"this is plain text, not tensors".to_vec(),
            &["not a safetensors file"],
        ),
        (
            "missing",
            safetensors(&layer(vec![4, 3], vec![4], "F32")[1..], None),
            &["missing tensor layers.0.weight"],
        ),
        (
            "shape",
            safetensors(&layer(vec![5, 3], vec![4], "F32"), None),
            &["layers.0.weight", "[5, 3]", "[4, 3]"],
        ),
        (
            "dtype",
            safetensors(&layer(vec![4, 3], vec![4], "F64"), None),
            &["layers.0.weight", "F64", "F32"],
        ),
    ];
    for (name, bytes, words) in cases {
        let path = file(&format!("{name}.safetensors"), &bytes);
        expect_err(
            checkpoint::load_parameters(&path, &network),
            is_format,
            words,
        );
        // The CLI's network takes iris's 4 features, so only the first words apply to it.
        cli_fails(
            &[
                "train",
                "--data",
                IRIS,
                "--layers",
                "4",
                "--init",
                path.to_str().unwrap(),
            ],
            &words[..1],
        );
    }
    let bad_json = file(
        "json.safetensors",
        &safetensors(&layer(vec![4, 3], vec![4], "F32"), Some("{not json")),
    );
    expect_err(
        checkpoint::load(&bad_json),
        is_format,
        &["metadata is not valid JSON"],
    );
    cli_fails(
        &[
            "eval",
            "--model",
            bad_json.to_str().unwrap(),
            "--data",
            IRIS,
        ],
        &["not valid JSON"],
    );
    let no_meta = file(
        "bare.safetensors",
        &safetensors(&layer(vec![4, 3], vec![4], "F32"), None),
    );
    expect_err(
        checkpoint::load(&no_meta),
        is_format,
        &["no `wgtrain` metadata"],
    );
}

#[test]
fn init_from_another_architecture() {
    let good = file("arch.safetensors", &checkpoint_bytes());
    let deeper = Network::builder(3)
        .dense(4, Activation::Relu)
        .dense(2, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    expect_err(
        checkpoint::load_parameters(&good, &deeper),
        is_format,
        &["missing tensor layers.4.weight"],
    );
    let shallower = Network::builder(3)
        .dense(4, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    expect_err(
        checkpoint::load_parameters(&good, &shallower),
        is_format,
        &["tensor `layers.2.bias` is not part of the network"],
    );
    // Bare tensors (as PyTorch writes them): iris has 4 features, the file's first layer takes 3.
    let bytes = checkpoint_bytes();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let bare = file(
        "bare.safetensors",
        &safetensors::serialize(tensors.tensors(), None).expect("serialize"),
    );
    cli_fails(
        &[
            "train",
            "--data",
            IRIS,
            "--layers",
            "4",
            "--init",
            bare.to_str().unwrap(),
        ],
        &["layers.0.weight", "[4, 3]", "[4, 4]"],
    );
    // A wgtrain model decides the classes: iris's are not this model's.
    cli_fails(
        &["train", "--data", IRIS, "--init", good.to_str().unwrap()],
        &["class `setosa` was not seen in training"],
    );
}

#[test]
fn bad_flag_values() {
    let cases: [(&[&str], &[&str]); 10] = [
        (&["--lr", "0"], &["--lr", "> 0"]),
        (&["--lr", "-0.5"], &["--lr", "-0.5"]),
        (&["--epochs", "0"], &["--epochs", "at least 1"]),
        (&["--batch-size", "0"], &["--batch-size", "at least 1"]),
        (&["--val-split", "1.5"], &["--val-split", "[0, 1)"]),
        (&["--val-split", "-0.1"], &["--val-split"]),
        (&["--layers", "16,0"], &["layer 2", "got 0"]),
        (&["--activation", "swish"], &["swish", "relu"]),
        (&["--loss", "hinge"], &["hinge"]),
        (&["--optimizer", "lamb"], &["lamb", "adamw", "rmsprop"]),
    ];
    for (flags, words) in cases {
        cli_fails(&[&["train", "--data", IRIS], flags].concat(), words);
    }
    cli_fails(
        &["train", "--data", IRIS, "--device", "tpu"],
        &["tpu", "fallback"],
    );
}

#[test]
fn predict_data_with_other_columns() {
    let dir = scratch();
    let model = dir.join("predict.safetensors");
    let status = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args([
            "train",
            "--data",
            IRIS,
            "--epochs",
            "1",
            "--quiet",
            "--out",
            model.to_str().unwrap(),
        ])
        .env("NODEVICE_SELECT", "1")
        .status()
        .expect("train");
    assert!(status.success());
    let two_columns = file("two.csv", b"x,y\n1,2\n");
    let err = data::load_csv_features(
        &two_columns,
        &["a".into(), "b".into(), "c".into(), "d".into()],
        "",
        data::DEFAULT_MAX_RECORD_BYTES,
    )
    .map(|read| read.features);
    expect_err(err, is_format, &["no column `a`", "a feature of the model"]);
    cli_fails(
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--data",
            two_columns.to_str().unwrap(),
        ],
        &["no column `sepal_length`", "a feature of the model"],
    );
}

#[test]
fn gpu_device_without_a_hardware_adapter() {
    match wgtrain::gpu::hardware_adapter() {
        Ok(_) => println!("this machine has a hardware GPU: nothing to refuse"),
        Err(_) => {
            let opened = wgtrain::Device::Gpu.open().map(|_| ());
            expect_err(
                opened,
                |e| matches!(e, Error::NoAdapter(_)),
                &["no hardware GPU adapter"],
            );
            cli_fails(
                &["train", "--data", IRIS, "--device", "gpu"],
                &["no hardware GPU adapter"],
            );
        }
    }
}
