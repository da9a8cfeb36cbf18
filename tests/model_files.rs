//! Model files and the flags around them: checkpoints that disagree with themselves are refused with the
//! field named; `predict` writes CSV that tools read back; flags that would do nothing are errors; `--init`
//! must match the run; early stopping reports the epoch whose weights it kept; outputs that overflow are
//! errors, not metrics; the environment and `summary`'s flags are checked like the rest.

mod common;

use common::cli::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::data::Task;
use wgtrain::{Activation, Error, Loss, Network};

fn classifier() -> Network {
    Network::builder(4)
        .dense(8, Activation::Relu)
        .dense(3, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid")
}

fn good_meta(network: &Network) -> ModelMeta {
    let mut meta = ModelMeta::describe(network);
    meta.task = Task::Classify;
    meta.target = "species".into();
    meta.feature_names = ["f0", "f1", "f2", "f3"].map(String::from).to_vec();
    meta.class_names = ["a", "b", "c"].map(String::from).to_vec();
    meta
}

/// A safetensors file with the classifier's tensors and `json` as its `wgtrain` metadata.
fn raw_checkpoint(path: &Path, json: &str) {
    let network = classifier();
    let good = path.with_extension("good.safetensors");
    checkpoint::save(&good, &network.init_parameters(0), &good_meta(&network)).expect("save");
    let bytes = std::fs::read(&good).expect("read");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let tensors: Vec<(String, safetensors::tensor::TensorView)> =
        file.tensors().into_iter().collect();
    let info = HashMap::from([("wgtrain".to_string(), json.to_string())]);
    let out = safetensors::serialize(tensors, Some(info)).expect("serialize");
    std::fs::write(path, out).expect("write");
}

#[test]
fn checkpoints_that_disagree_with_themselves_are_refused() {
    let dir = scratch("meta");
    let network = classifier();
    let params = network.init_parameters(0);
    type Edit = fn(&mut ModelMeta);
    let cases: [(&str, Edit, &[&str]); 8] = [
        (
            "empty-feature",
            |m| m.feature_names[1] = String::new(),
            &["feature_names has an empty name at 2"],
        ),
        (
            "same-number-classes",
            |m| {
                m.class_names[0] = "1".into();
                m.class_names[1] = "1.0".into();
            },
            &["class_names has `1.0` twice (at 1 and 2)"],
        ),
        (
            "regress",
            |m| m.task = Task::Regress,
            &["task is regress", "class_names lists 3 classes"],
        ),
        (
            "regress-no-classes",
            |m| {
                m.task = Task::Regress;
                m.class_names.clear();
            },
            &["task is regress", "3 softmax outputs"],
        ),
        (
            "classes",
            |m| m.class_names.truncate(2),
            &["class_names has 2 classes", "3 softmax outputs"],
        ),
        (
            "duplicate-feature",
            |m| m.feature_names[2] = "f1".into(),
            &["feature_names has `f1` twice"],
        ),
        (
            "feature-count",
            |m| m.feature_names.truncate(3),
            &["feature_names has 3 names for 4 inputs"],
        ),
        (
            "target-is-feature",
            |m| m.target = "f2".into(),
            &["target `f2` is also one of feature_names"],
        ),
    ];
    for (name, edit, words) in cases {
        let mut meta = good_meta(&network);
        edit(&mut meta);
        let path = dir.join(format!("{name}.safetensors"));
        checkpoint::save(&path, &params, &meta).expect("save");
        let err = checkpoint::load(&path).expect_err(name);
        assert!(matches!(err, Error::Format { .. }), "{name}: {err:?}");
        let message = err.to_string();
        for word in words.iter().chain(&["`wgtrain` metadata"]) {
            assert!(message.contains(word), "{name}: `{message}` lacks `{word}`");
        }
        let before = snapshot(&[&path]);
        fails(
            &["predict", "--model", &text(&path), "--data", &iris()],
            words,
        );
        assert_eq!(snapshot(&[&path]), before, "{name} is unchanged");
    }

    let wrong_type = dir.join("wrong-type.safetensors");
    let json = serde_json::to_string(&good_meta(&network)).expect("json");
    raw_checkpoint(
        &wrong_type,
        &json.replace("\"inputs\":4", "\"inputs\":\"four\""),
    );
    fails(
        &["eval", "--model", &text(&wrong_type), "--data", &iris()],
        &["does not describe a model", "invalid type"],
    );
    let negative = dir.join("negative.safetensors");
    raw_checkpoint(&negative, &json.replace("\"epochs\":0", "\"epochs\":-1"));
    fails(
        &["eval", "--model", &text(&negative), "--data", &iris()],
        &["field `epochs`", "invalid value: integer `-1`"],
    );
    let unknown = dir.join("unknown-field.safetensors");
    raw_checkpoint(
        &unknown,
        &json.replace("\"epochs\":0", "\"epochs\":0,\"bogus\":1"),
    );
    fails(
        &["eval", "--model", &text(&unknown), "--data", &iris()],
        &["unknown field `bogus`"],
    );
    let not_json = dir.join("not-json.safetensors");
    raw_checkpoint(&not_json, "{\"format_version\": 1,");
    fails(
        &["eval", "--model", &text(&not_json), "--data", &iris()],
        &["is not valid JSON"],
    );
}

#[test]
fn tensors_that_are_not_part_of_the_network_are_refused() {
    let dir = scratch("extra-tensor");
    let network = classifier();
    let good = dir.join("good.safetensors");
    checkpoint::save(&good, &network.init_parameters(0), &good_meta(&network)).expect("save");
    let bytes = std::fs::read(&good).expect("read");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let meta = file_metadata(&bytes);
    let mut tensors: Vec<(String, safetensors::tensor::TensorView)> =
        file.tensors().into_iter().collect();
    let extra = [0u8; 12];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3], &extra)
        .expect("a view");
    tensors.push(("layers.7.bias".into(), view));
    let path = dir.join("extra.safetensors");
    std::fs::write(
        &path,
        safetensors::serialize(tensors, Some(meta)).expect("serialize"),
    )
    .expect("write");
    let err = checkpoint::load(&path).expect_err("an extra tensor");
    assert!(
        err.to_string()
            .contains("tensor `layers.7.bias` is not part of the network"),
        "{err}"
    );
    fails(
        &["predict", "--model", &text(&path), "--data", &iris()],
        &["`layers.7.bias`", "not part of the network"],
    );
}

/// The metadata map of a safetensors file.
fn file_metadata(bytes: &[u8]) -> HashMap<String, String> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).expect("header");
    header.metadata().clone().expect("metadata")
}

#[test]
fn predict_writes_csv_that_tools_read() {
    let dir = scratch("predict-csv");
    let classes = ["a,b", "say \"hi\"", "two\nlines"];
    let mut table = csv::Writer::from_path(dir.join("odd.csv")).expect("csv");
    table.write_record(["x", "label"]).expect("row");
    for i in 0..60 {
        let class = i % 3;
        let x = class as f32 * 10.0 + (i as f32 * 0.37).sin();
        table
            .write_record([x.to_string(), classes[class].to_string()])
            .expect("row");
    }
    table.flush().expect("flush");
    drop(table);
    let data = text(&dir.join("odd.csv"));
    let model = text(&dir.join("odd.safetensors"));
    ok(&[
        "train", "--data", &data, "--epochs", "60", "--lr", "0.05", "--device", "cpu", "--out",
        &model,
    ]);
    let out = ok(&[
        "predict", "--model", &model, "--data", &data, "--device", "cpu",
    ]);
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let expected: Vec<String> = std::iter::once("prediction".to_string())
        .chain(classes.iter().map(|c| format!("p_{c}")))
        .collect();
    assert_eq!(header, expected);
    let mut right = 0;
    for (i, row) in reader.records().enumerate() {
        let row = row.expect("a CSV row");
        assert_eq!(row.len(), 4);
        let p: Vec<f64> = (1..4).map(|c| row[c].parse().expect("number")).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p:?}");
        right += usize::from(&row[0] == classes[i % 3]);
    }
    assert!(right >= 55, "{right} of 60 predicted right");
}

#[test]
fn flags_that_would_do_nothing_are_errors() {
    let train = |extra: &[&str]| train_cpu(&iris(), extra);
    fails(
        &strs(&train(&["--momentum", "0.9", "--optimizer", "adam"])),
        &[
            "--momentum",
            "--optimizer momentum, nesterov or rmsprop, not adam",
        ],
    );
    fails(
        &strs(&train(&["--momentum", "0.5"])),
        &["--momentum", "not adam"],
    );
    fails(
        &strs(&train(&["--activation", "tanh", "--layers", ""])),
        &["--activation", "tanh applies to hidden layers"],
    );
    fails(
        &[
            "summary",
            "--inputs",
            "4",
            "--outputs",
            "1",
            "--activation",
            "tanh",
        ],
        &["--activation", "has none"],
    );
    let images = format!("{DATA}/mnist10k-test-images-idx3-ubyte.gz");
    fails(
        &["train", "--data", &images, "--target", "label"],
        &["--target", "IDX"],
    );
    for (flags, words) in [
        (
            &["--betas", "0.9,0.99"][..],
            &["--betas", "adam or adamw, not sgd"][..],
        ),
        (
            &["--eps", "1e-6"],
            &["--eps", "adam, adamw or rmsprop, not sgd"],
        ),
        (&["--alpha", "0.9"], &["--alpha", "rmsprop, not sgd"]),
        (&["--centered"], &["--centered", "rmsprop, not sgd"]),
    ] {
        fails(
            &strs(&train(&[&["--optimizer", "sgd"], flags].concat())),
            words,
        );
    }
    fails(
        &strs(&train(&["--optimizer", "nesterov", "--momentum", "0"])),
        &["--momentum", "nesterov needs a momentum > 0"],
    );
    fails(
        &strs(&train(&["--optimizer", "adamw", "--betas", "0.9"])),
        &["--betas", "B1,B2", "got `0.9`"],
    );
    fails(
        &strs(&train(&["--optimizer", "adam", "--betas", "0.9,1"])),
        &["--betas", "[0, 1)"],
    );
    fails(
        &strs(&train(&["--optimizer", "rmsprop", "--alpha", "1.5"])),
        &["--alpha", "[0, 1), got 1.5"],
    );
    fails(
        &strs(&train(&["--optimizer", "adam", "--eps", "-1"])),
        &["--eps", "> 0"],
    );
    for (flags, words) in [
        (
            &["--schedule", "step", "--warmup", "2"][..],
            &["--warmup", "constant or cosine, not step"][..],
        ),
        (&["--schedule", "step"], &["--step-size", "needs it"]),
        (
            &["--schedule", "multistep", "--milestones", "5,x"],
            &["--milestones", "`5,x`"],
        ),
        (
            &["--schedule", "multistep", "--milestones", "5,2"],
            &["milestones", "increasing"],
        ),
        (&["--schedule", "exponential"], &["--gamma", "needs it"]),
        (
            &["--schedule", "cosine", "--gamma", "0.5"],
            &["--gamma", "not cosine"],
        ),
        (&["--schedule", "plateau"], &["--schedule", "--val-split"]),
        (&["--min-lr", "0.1"], &["--min-lr", "not constant"]),
        (
            &["--schedule", "cosine", "--warmup", "1"],
            &["warm-up", "leaves none of the 1"],
        ),
    ] {
        fails(&strs(&train(flags)), words);
    }
    fails(
        &strs(&train(&["--clip-norm", "0"])),
        &["--clip-norm", "> 0, got 0"],
    );
    fails(
        &strs(&train(&["--clip-value", "-0.5"])),
        &["--clip-value", "> 0, got -0.5"],
    );
    // General flags are always accepted, even where they change nothing.
    ok(&strs(&train(&[
        "--optimizer",
        "momentum",
        "--momentum",
        "0.5",
        "--no-shuffle",
        "--seed",
        "3",
    ])));
}

#[test]
fn init_from_another_run_must_match_it() {
    let dir = scratch("init");
    let model = text(&dir.join("tanh.safetensors"));
    let train = |extra: &[&str]| train_cpu(&iris(), &[&["--epochs", "2"], extra].concat());
    ok(&strs(&train(&["--activation", "tanh", "--out", &model])));
    let before = snapshot(&[&model]);
    fails(
        &strs(&train(&["--init", &model])),
        &["--init", "layer 1 is tanh, this run's is relu"],
    );
    fails(
        &strs(&train(&[
            "--init",
            &model,
            "--activation",
            "tanh",
            "--loss",
            "sse",
            "--output",
            "softmax",
        ])),
        &["--init", "the loss is ce, this run's is sse"],
    );
    assert_eq!(snapshot(&[&model]), before, "--init is never written");
    ok(&strs(&train(&["--init", &model, "--activation", "tanh"])));

    // The same columns in another order are matched by name: with a learning rate too small to move
    // anything, the model started from the file predicts what the file's model predicts.
    let text_rows = std::fs::read_to_string(iris()).expect("iris");
    let reordered: Vec<String> = text_rows
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            [c[2], c[0], c[3], c[1], c[4]].join(",")
        })
        .collect();
    let shuffled = dir.join("reordered.csv");
    std::fs::write(&shuffled, reordered.join("\n") + "\n").expect("write");
    let moved = text(&dir.join("moved.safetensors"));
    ok(&[
        "train",
        "--data",
        &text(&shuffled),
        "--epochs",
        "1",
        "--lr",
        "1e-30",
        "--device",
        "cpu",
        "--activation",
        "tanh",
        "--init",
        &model,
        "--out",
        &moved,
    ]);
    let predict =
        |m: &str, data: &str| ok(&["predict", "--model", m, "--data", data, "--device", "cpu"]);
    let (before, after) = (predict(&model, &iris()), predict(&moved, &text(&shuffled)));
    for (a, b) in before.lines().zip(after.lines()).skip(1) {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
        assert_eq!(a[0], b[0], "the predicted class");
        for (x, y) in a[1..].iter().zip(&b[1..]) {
            let (x, y): (f32, f32) = (x.parse().expect("p"), y.parse().expect("p"));
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}

fn epoch_lines(out: &str) -> HashMap<usize, String> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("epoch ")?;
            let (counter, metrics) = rest.split_once(' ')?;
            let epoch = counter.split('/').next()?.parse().ok()?;
            Some((epoch, metrics.to_string()))
        })
        .collect()
}

#[test]
fn early_stopping_reports_the_restored_epoch() {
    let dir = scratch("patience");
    let model: PathBuf = dir.join("best.safetensors");
    let args: Vec<String> = [
        "train",
        "--data",
        &iris(),
        "--epochs",
        "300",
        "--lr",
        "0.05",
        "--val-split",
        "0.3",
        "--patience",
        "3",
        "--device",
        "cpu",
        "--out",
        &text(&model),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let chatty = ok(&strs(&args));
    let mut json_args = args.clone();
    json_args.push("--json".into());
    let r = report(&strs(&json_args));
    let (epochs, run, best) = (
        r["epochs"].as_u64().expect("epochs") as usize,
        r["epochs_run"].as_u64().expect("epochs_run") as usize,
        r["best_epoch"].as_u64().expect("best_epoch") as usize,
    );
    assert!(run < 300, "early stopping stopped the run: {r}");
    assert_eq!(epochs, best, "{r}");
    assert_eq!(run, best + 3, "{r}");
    let lines = epoch_lines(&chatty);
    let kept = &lines[&best];
    for key in ["loss", "val_loss", "val_accuracy"] {
        let printed = kept
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .expect("printed metric");
        let reported = r[key].as_f64().expect("reported metric");
        assert_eq!(printed, format!("{reported:.4}"), "{key} of epoch {best}");
    }
    assert!(chatty.contains(&format!("restored the weights of epoch {best}")));
    let (_, _, meta) = checkpoint::load(&model).expect("load");
    assert_eq!(meta.epochs, best);
}

#[test]
fn a_model_without_feature_names_still_checks_the_column_count() {
    let dir = scratch("unnamed-model");
    let network = Network::builder(2)
        .dense(1, Activation::Linear)
        .build(Loss::Mse)
        .expect("valid");
    let path = dir.join("bare.safetensors");
    // What the library writes for a model it knows nothing about: no feature names, no target.
    checkpoint::save(
        &path,
        &network.init_parameters(0),
        &ModelMeta::describe(&network),
    )
    .expect("save");
    let three = dir.join("three.csv");
    std::fs::write(&three, "a,b,c\n1,2,3\n4,5,6\n").expect("write");
    fails(
        &["predict", "--model", &text(&path), "--data", &text(&three)],
        &["2 feature columns", "3 in"],
    );
    let two = dir.join("two.csv");
    std::fs::write(&two, "a,b\n1,2\n4,5\n").expect("write");
    let out = ok(&[
        "predict",
        "--model",
        &text(&path),
        "--data",
        &text(&two),
        "--device",
        "cpu",
    ]);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn outputs_that_overflow_are_errors_not_metrics() {
    let dir = scratch("overflow");
    let model = text(&dir.join("iris.safetensors"));
    ok(&strs(&train_cpu(&iris(), &["--out", &model])));
    let far = dir.join("far.csv");
    std::fs::write(
        &far,
        "sepal_length,sepal_width,petal_length,petal_width,species\n5,3,1.5,0.2,setosa\n1e38,1e38,1e38,1e38,setosa\n",
    )
    .expect("write");
    fails(
        &["predict", "--model", &model, "--data", &text(&far)],
        &["far.csv", "line 3"],
    );
    fails(
        &["eval", "--model", &model, "--data", &text(&far)],
        &["far.csv"],
    );
    let huge = dir.join("huge.csv");
    std::fs::write(
        &huge,
        "sepal_length,sepal_width,petal_length,petal_width,species\n5,3e38,1.5,0.2,setosa\n",
    )
    .expect("write");
    fails(
        &["predict", "--model", &model, "--data", &text(&huge)],
        &[
            "huge.csv",
            "line 2, column `sepal_width`",
            "too far outside the training data",
        ],
    );
    // An IDX file of another image size is reported as that, not as an unseen label.
    let images = format!("{DATA}/mnist10k-test-images-idx3-ubyte.gz");
    fails(
        &["eval", "--model", &model, "--data", &images],
        &["4 feature columns", "784"],
    );
}

#[test]
fn the_environment_and_summary_are_checked_too() {
    let mut bogus = command(&["devices"]);
    bogus.env("WGTRAIN_DEVICE", "bogus");
    failed(
        &["devices"],
        &run_with(bogus, None),
        &["WGTRAIN_DEVICE", "`bogus`"],
    );
    let mut bytes = command(&["train", "--data", &iris()]);
    bytes.env(
        "WGTRAIN_DEVICE",
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff"),
    );
    failed(
        &["train"],
        &run_with(bytes, None),
        &["WGTRAIN_DEVICE", "not text"],
    );
    fails(
        &[
            "summary",
            "--inputs",
            "3",
            "--outputs",
            "1",
            "--output",
            "softmax",
        ],
        &["softmax over one output"],
    );
}

#[test]
fn fine_tuning_keeps_what_the_model_was_trained_on() {
    let dir = scratch("fine-tune");
    let model = text(&dir.join("iris.safetensors"));
    ok(&strs(&train_cpu(
        &iris(),
        &["--epochs", "30", "--lr", "0.01", "--out", &model],
    )));
    // New data with only two of the classes and another spread of values, columns in another order.
    let rows = std::fs::read_to_string(iris()).expect("iris");
    let mut lines = vec!["species,petal_width,petal_length,sepal_width,sepal_length".to_string()];
    for line in rows.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        if c[4] != "setosa" && c[0].parse::<f32>().expect("number") > 6.0 {
            lines.push([c[4], c[3], c[2], c[1], c[0]].join(","));
        }
    }
    let new = dir.join("new.csv");
    std::fs::write(&new, lines.join("\n") + "\n").expect("write");
    let eval = |m: &str| -> f64 {
        let r = serde_json::from_str::<serde_json::Value>(
            ok(&[
                "eval",
                "--model",
                m,
                "--data",
                &text(&new),
                "--device",
                "cpu",
                "--json",
            ])
            .trim(),
        )
        .expect("JSON");
        r["loss"].as_f64().expect("loss")
    };
    let tuned = text(&dir.join("tuned.safetensors"));
    ok(&strs(&train_cpu(
        &text(&new),
        &["--init", &model, "--lr", "1e-9", "--out", &tuned],
    )));
    // With a step too small to move anything, the tuned model is the model: the same classes, the same
    // columns by name and the same standardisation, not statistics recomputed from the new data.
    let (before, after) = (eval(&model), eval(&tuned));
    assert!((before - after).abs() < 1e-4, "{before} vs {after}");
    let (_, _, meta) = checkpoint::load(Path::new(&tuned)).expect("load");
    assert_eq!(meta.epochs, 31, "30 epochs, then one more");
    let json = report(&strs(&train_cpu(
        &text(&new),
        &["--init", &tuned, "--lr", "1e-9", "--json"],
    )));
    assert_eq!(
        json["epochs"], 32,
        "the JSON counts as the checkpoint does: {json}"
    );
    fails(
        &strs(&train_cpu(
            &text(&new),
            &["--init", &model, "--target", "sepal_width"],
        )),
        &[
            "--target",
            "conflicts with --init",
            "whose target is `species`",
        ],
    );
    fails(
        &strs(&train_cpu(
            &iris(),
            &["--init", &model, "--layers", "128,4"],
        )),
        &["--init", "it has 4 layers, this run 6"],
    );
    assert_eq!(meta.class_names, ["setosa", "versicolor", "virginica"]);
    fails(
        &strs(&train_cpu(
            &text(&new),
            &["--init", &model, "--no-standardize"],
        )),
        &["--no-standardize", "conflicts with --init", "standardised"],
    );
    fails(
        &strs(&train_cpu(
            &text(&new),
            &["--init", &model, "--task", "regress"],
        )),
        &["--task", "conflicts with --init", "classify model"],
    );
}

#[test]
fn targets_the_loss_cannot_fit_are_named() {
    let dir = scratch("bce-targets");
    let data = dir.join("int.csv");
    std::fs::write(&data, "x,y\n1,0.5\n2,6\n3,0.25\n").expect("write");
    fails(
        &strs(&train_cpu(
            &text(&data),
            &["--task", "regress", "--output", "sigmoid"],
        )),
        &["int.csv", "line 3, column `y`", "6 is outside [0, 1]"],
    );
}

#[test]
fn held_out_losses_that_overflow_stop_training() {
    let dir = scratch("val-overflow");
    let data = dir.join("wild.csv");
    let mut rows = vec!["a,b,y".to_string()];
    for i in 0..40 {
        let x = i as f32 / 4.0;
        rows.push(format!("{x},{},{}", x * x, 1000.0 * x * x * x));
    }
    std::fs::write(&data, rows.join("\n") + "\n").expect("write");
    let out = dir.join("m.safetensors");
    let args = train_cpu(
        &text(&data),
        &[
            "--epochs",
            "3",
            "--val-split",
            "0.3",
            "--lr",
            "0.5",
            "--optimizer",
            "sgd",
            // Targets up to 1e6 as they are: standardised, they would not overflow.
            "--no-scale-target",
            "--quiet",
            "--out",
            &text(&out),
        ],
    );
    let line = fails(&strs(&args), &["training diverged"]);
    assert!(!line.contains("null"), "{line}");
}

/// A format 1 checkpoint, written by wgtrain before layers were units (commit 23dcc27: dense layers with
/// their activations, tensors numbered by dense layer), still loads: its predictions are the ones that
/// version wrote, byte for byte, and a run that starts from it saves format 2 (tensors numbered by layer,
/// as `nn.Sequential` numbers its modules).
#[test]
fn format_1_checkpoints_still_load() {
    let old = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/format1-iris.safetensors"
    );
    let expected = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/format1-iris-predictions.csv"
    ))
    .expect("stored predictions");
    let predictions = ok(&[
        "predict",
        "--model",
        old,
        "--data",
        &iris(),
        "--device",
        "cpu",
    ]);
    assert_eq!(predictions, expected);
    let (network, params, meta) = checkpoint::load(Path::new(old)).expect("loads");
    assert_eq!(meta.format_version, checkpoint::FORMAT_VERSION);
    assert_eq!(
        network
            .summary()
            .lines()
            .nth(2)
            .map(str::split_whitespace)
            .map(|w| w.collect::<Vec<_>>()),
        Some(vec!["0", "dense:5", "5", "25"])
    );
    assert_eq!((params.len(), params[1].weights.len()), (2, 15));

    let dir = scratch("format1");
    let new = dir.join("tuned.safetensors");
    ok(&strs(&train_cpu(
        &iris(),
        &[
            "--init",
            old,
            "--epochs",
            "1",
            "--layers",
            "5",
            "--out",
            &text(&new),
        ],
    )));
    let bytes = std::fs::read(&new).expect("written");
    let mut names = safetensors::SafeTensors::deserialize(&bytes)
        .expect("parse")
        .names()
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    let json = &file_metadata(&bytes)["wgtrain"];
    assert!(
        json.contains(r#""format_version":2"#)
            && json.contains(r#""layers":["dense:5","relu","dense:3","softmax"]"#),
        "{json}"
    );
}

/// Regression: a batch norm's running variance edited below 0 loaded and gave near-uniform predictions; a
/// variance or a batch count must be >= 0.
#[test]
fn negative_running_statistics_are_refused() {
    let dir = scratch("negative-var");
    let good = dir.join("bn.safetensors");
    ok(&strs(&train_cpu(
        &iris(),
        &[
            "--arch",
            "dense:8,batchnorm,relu,dense:3",
            "--out",
            &text(&good),
        ],
    )));
    let bytes = std::fs::read(&good).expect("read");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let var = [-1.0f32; 8];
    let var_bytes: Vec<u8> = var.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != "layers.1.running_var")
        .collect();
    tensors.push((
        "layers.1.running_var".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![8], &var_bytes)
            .expect("view"),
    ));
    let bad = dir.join("negative.safetensors");
    let out = safetensors::serialize(tensors, Some(file_metadata(&bytes))).expect("serialize");
    std::fs::write(&bad, out).expect("write");
    fails(
        &[
            "eval",
            "--model",
            &text(&bad),
            "--data",
            &iris(),
            "--device",
            "cpu",
        ],
        &["layers.1.running_var", "holds -1", "expected values >= 0"],
    );
}
