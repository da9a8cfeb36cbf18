//! The `wgtrain` binary, driven as a user would: every command, the JSON report, checkpoints that other
//! tools read, `--init`, devices agreeing, and bad input giving one `error:` line with exit code 2.

mod common;

use common::cli::*;
use common::{assert_close, gpu_backend, TRAINING};
use std::path::Path;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

fn number(report: &serde_json::Value, key: &str) -> f32 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no `{key}` in {report}")) as f32
}

#[test]
fn train_reports_json_with_validation_and_test_metrics() {
    let dir = scratch("json");
    let (train, test) = split_csv(&dir, &iris(), 5);
    let r = report(&[
        "train",
        "--data",
        &train,
        "--test-data",
        &test,
        "--val-split",
        "0.2",
        "--epochs",
        "40",
        "--lr",
        "0.01",
        "--device",
        "cpu",
        "--json",
    ]);
    for key in [
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "test_loss",
        "test_accuracy",
    ] {
        let v = number(&r, key);
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    assert_eq!(r["epochs"], 40);
    assert_eq!(r["device"], "cpu");
    assert!(number(&r, "test_accuracy") >= 0.9, "{r}");
}

/// Every optimizer trains from the command line with torch.optim's defaults (RMSprop's learning rate
/// 0.01, AdamW's weight decay 0.01) and reports what it used.
#[test]
fn every_optimizer_trains_with_its_defaults() {
    for (name, extra, lr, wd) in [
        ("sgd", &["--lr", "0.1"][..], 0.1, 0.0),
        (
            "sgd",
            &["--lr", "0.1", "--clip-norm", "1", "--clip-value", "0.5"],
            0.1,
            0.0,
        ),
        ("momentum", &["--lr", "0.02"], 0.02, 0.0),
        (
            "nesterov",
            &["--lr", "0.02", "--weight-decay", "0.001"],
            0.02,
            0.001,
        ),
        ("adam", &["--lr", "0.01"], 0.01, 0.0),
        ("adamw", &["--lr", "0.01"], 0.01, 0.01),
        ("rmsprop", &[], 0.01, 0.0),
        (
            "rmsprop",
            &["--centered", "--momentum", "0.5", "--lr", "0.002"],
            0.002,
            0.0,
        ),
    ] {
        let args = train_cpu(
            &iris(),
            &[&["--optimizer", name, "--epochs", "40", "--json"], extra].concat(),
        );
        let r = report(&strs(&args));
        assert_eq!(r["optimizer"], name, "{r}");
        assert!((number(&r, "learning_rate") - lr).abs() < 1e-7, "{r}");
        assert!((number(&r, "weight_decay") - wd).abs() < 1e-7, "{r}");
        assert!(number(&r, "accuracy") >= 0.9, "{name} {extra:?}: {r}");
        let clips = extra.contains(&"--clip-norm");
        assert_eq!(r.get("clip_norm").is_some(), clips, "{r}");
        if clips {
            assert_eq!(number(&r, "clip_norm"), 1.0, "{r}");
            assert_eq!(number(&r, "clip_value"), 0.5, "{r}");
        }
    }
}

/// A schedule from the command line: the report names it and the rate of the last epoch, and the plot
/// gains a learning-rate panel.
#[test]
fn schedules_from_the_command_line() {
    let dir = scratch("schedule");
    let plot = dir.join("curves.png");
    let plot = plot.to_str().expect("utf-8 path");
    let args = train_cpu(
        &iris(),
        &[
            "--epochs",
            "10",
            "--lr",
            "0.01",
            "--schedule",
            "cosine",
            "--warmup",
            "2",
            "--min-lr",
            "0.001",
            "--plot",
            plot,
            "--json",
        ],
    );
    let r = report(&strs(&args));
    assert_eq!(r["schedule"], "cosine", "{r}");
    // Epoch 10 of 10: t = 7 of 8 cosine epochs after a 2-epoch warm-up.
    let last = 0.001 + 0.009 * (1.0 + (std::f64::consts::PI * 7.0 / 8.0).cos()) / 2.0;
    assert!(
        (f64::from(number(&r, "final_learning_rate")) - last).abs() < 1e-8,
        "{r}"
    );
    let constant = report(&strs(&train_cpu(&iris(), &["--lr", "0.01", "--json"])));
    assert_eq!(constant["schedule"], "constant");
    assert_eq!(number(&constant, "final_learning_rate"), 0.01);
    let png = std::fs::read(plot).expect("plot written");
    assert_eq!(&png[1..4], b"PNG");
}

/// A regression target in the hundreds of thousands trains like a z-scored one: it is standardised from the
/// training split, the report's mse is in the target's units, `predict` maps back, and `eval` agrees.
#[test]
fn regression_targets_are_standardised() {
    let dir = scratch("prices");
    let write = |name: &str, seed: u64| {
        let mut csv = String::from("area,age,price\n");
        for i in 0..200u64 {
            let h = |k: u64| ((i * 2654435761 + seed * 97 + k * 40503) % 1000) as f64 / 1000.0;
            let (area, age) = (h(1), h(2));
            let price = 150_000.0 + 80_000.0 * area - 30_000.0 * age + 2_000.0 * (h(3) - 0.5);
            csv += &format!("{area},{age},{price:.2}\n");
        }
        let path = dir.join(name);
        std::fs::write(&path, csv).expect("write csv");
        path.to_str().expect("utf-8").to_string()
    };
    let (train, test) = (write("train.csv", 1), write("test.csv", 2));
    let test_prices: Vec<f64> = std::fs::read_to_string(&test)
        .expect("read")
        .lines()
        .skip(1)
        .map(|l| {
            l.rsplit(',')
                .next()
                .expect("price")
                .parse()
                .expect("number")
        })
        .collect();
    let mean = test_prices.iter().sum::<f64>() / test_prices.len() as f64;
    let variance =
        test_prices.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / test_prices.len() as f64;
    let model = dir.join("prices.safetensors");
    let model = model.to_str().expect("utf-8");
    let run = |extra: &[&str]| {
        let base = [
            "train",
            "--data",
            &train,
            "--test-data",
            &test,
            "--target",
            "price",
            "--epochs",
            "80",
            "--lr",
            "0.01",
            "--device",
            "cpu",
            "--json",
        ];
        report(&[&base[..], extra].concat())
    };
    let r = run(&["--out", model]);
    let r2 = 1.0 - f64::from(number(&r, "test_mse")) / variance;
    assert!(r2 > 0.95, "R² {r2} with the target standardised: {r}");
    let raw = run(&["--no-scale-target"]);
    let raw_r2 = 1.0 - f64::from(number(&raw, "test_mse")) / variance;
    assert!(
        raw_r2 < 0.0,
        "R² {raw_r2} on raw prices: the default should be what makes it work"
    );
    // predict gives prices, not z-scores; their error matches the reported test mse.
    let out = ok(&[
        "predict", "--model", model, "--data", &test, "--device", "cpu",
    ]);
    let predictions: Vec<f64> = out
        .lines()
        .skip(1)
        .map(|l| l.parse().expect("number"))
        .collect();
    assert_eq!(predictions.len(), test_prices.len());
    let mse = predictions
        .iter()
        .zip(&test_prices)
        .map(|(p, y)| (p - y).powi(2))
        .sum::<f64>()
        / predictions.len() as f64;
    let reported = f64::from(number(&r, "test_mse"));
    assert!(
        (mse - reported).abs() < 1e-3 * reported,
        "predict's mse {mse} against {reported}"
    );
    let e = report(&[
        "eval", "--model", model, "--data", &test, "--device", "cpu", "--json",
    ]);
    assert!(
        (f64::from(number(&e, "mse")) - reported).abs() < 1e-3 * reported,
        "{e}"
    );
    // Continuing from the model keeps its scaling; asking to drop it is a contradiction.
    fails(
        &[
            "train",
            "--data",
            &train,
            "--target",
            "price",
            "--init",
            model,
            "--no-scale-target",
        ],
        &["--no-scale-target", "standardised"],
    );
}

/// A target with a class for nearly every row trains, with a warning that it may be an id.
#[test]
fn a_target_like_an_id_is_warned_about() {
    let dir = scratch("id-target");
    let data = dir.join("people.csv");
    let mut csv = String::from("height,person\n");
    for i in 0..20 {
        csv += &format!("{},p{i}\n", 150 + i);
    }
    std::fs::write(&data, csv).expect("write");
    let path = data.to_str().expect("utf-8");
    let args = [
        "train", "--data", path, "--target", "person", "--epochs", "1", "--device", "cpu",
    ];
    let output = run(&args);
    succeeded(&args, &output);
    let err = stderr(&output);
    assert!(
        err.contains("warning") && err.contains("20 classes in 20 rows"),
        "{err}"
    );
    let iris_args = train_cpu(&iris(), &[]);
    let quiet = run(&strs(&iris_args));
    assert!(
        !stderr(&quiet).contains("is it an id"),
        "{}",
        stderr(&quiet)
    );
}

/// `eval` reports every classification metric (checked against the confusion matrix it gives), prints
/// the per-class table and the matrix, and writes the heatmap; a `--plot` that is one of its inputs is
/// refused before anything is read or written.
#[test]
fn eval_reports_full_metrics() {
    let dir = scratch("eval-metrics");
    let model = dir.join("iris.safetensors");
    let model = model.to_str().expect("utf-8");
    ok(&strs(&train_cpu(
        &iris(),
        &["--epochs", "30", "--lr", "0.01", "--out", model],
    )));
    let e = report(&[
        "eval",
        "--model",
        model,
        "--data",
        &iris(),
        "--device",
        "cpu",
        "--json",
    ]);
    let m = &e["metrics"];
    let confusion: Vec<Vec<u64>> = serde_json::from_value(m["confusion"].clone()).expect("matrix");
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 150, "{m}");
    let diagonal: u64 = (0..3).map(|i| confusion[i][i]).sum();
    assert!((m["accuracy"].as_f64().expect("accuracy") - diagonal as f64 / 150.0).abs() < 1e-12);
    for (c, class) in m["per_class"]
        .as_array()
        .expect("per class")
        .iter()
        .enumerate()
    {
        let predicted: u64 = (0..3).map(|t| confusion[t][c]).sum();
        let precision = confusion[c][c] as f64 / predicted as f64;
        assert!(
            (class["precision"].as_f64().expect("p") - precision).abs() < 1e-12,
            "{class}"
        );
        assert_eq!(class["support"], 50);
    }
    for key in ["log_loss", "roc_auc"] {
        assert!(m[key].as_f64().is_some_and(|v| v.is_finite()), "{key}: {m}");
    }
    assert!(m["macro"]["f1"].as_f64().expect("macro f1") > 0.9, "{m}");
    let plot = dir.join("confusion.png");
    let plot = plot.to_str().expect("utf-8");
    let text = ok(&[
        "eval",
        "--model",
        model,
        "--data",
        &iris(),
        "--device",
        "cpu",
        "--plot",
        plot,
    ]);
    assert!(
        text.contains("weighted avg") && text.contains("true \\ predicted"),
        "{text}"
    );
    assert_eq!(&std::fs::read(plot).expect("heatmap")[1..4], b"PNG");
    let before = std::fs::read(iris()).expect("iris");
    fails(
        &[
            "eval",
            "--model",
            model,
            "--data",
            &iris(),
            "--device",
            "cpu",
            "--plot",
            &iris(),
        ],
        &["--plot"],
    );
    assert_eq!(
        std::fs::read(iris()).expect("iris"),
        before,
        "an input was overwritten"
    );
}

/// Columns chosen from the command line: `--ignore` drops an id, `--features` picks and orders columns,
/// a semicolon file is read as such, and `predict` finds the model's columns by name in a tab-separated
/// file with the columns in another order.
#[test]
fn columns_and_separators_from_the_command_line() {
    let dir = scratch("columns");
    let mut semi = String::from("id;sepal_length;sepal_width;petal_length;petal_width;species\n");
    let iris_text = std::fs::read_to_string(iris()).expect("iris");
    for (i, line) in iris_text.lines().skip(1).enumerate() {
        semi += &format!("{};{}\n", 1000 + i, line.replace(',', ";"));
    }
    let data = dir.join("iris-semicolon.csv");
    std::fs::write(&data, semi).expect("write");
    let data = data.to_str().expect("utf-8");
    let model = dir.join("m.safetensors");
    let model = model.to_str().expect("utf-8");
    let r = report(&strs(&train_cpu(
        data,
        &[
            "--ignore", "id", "--epochs", "30", "--lr", "0.01", "--out", model, "--json",
        ],
    )));
    assert!(number(&r, "accuracy") > 0.9, "{r}");
    let picked = report(&strs(&train_cpu(
        data,
        &["--features", "petal_width,petal_length", "--json"],
    )));
    assert!(picked.get("loss").is_some(), "{picked}");
    // predict: tab-separated, columns shuffled, the id still there and unused.
    let mut tsv = String::from("petal_width\tid\tsepal_width\tpetal_length\tsepal_length\n");
    tsv += "0.2\t1\t3.5\t1.4\t5.1\n2.3\t2\t3.0\t5.9\t6.8\n";
    let rows = dir.join("rows.tsv");
    std::fs::write(&rows, tsv).expect("write");
    let out = ok(&[
        "predict",
        "--model",
        model,
        "--data",
        rows.to_str().expect("utf-8"),
        "--device",
        "cpu",
    ]);
    let classes: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().expect("class"))
        .collect();
    assert_eq!(classes, ["setosa", "virginica"], "{out}");
    fails(
        &strs(&train_cpu(data, &["--ignore", "nope"])),
        &["no column `nope`"],
    );
    fails(
        &strs(&train_cpu(data, &["--features", "petal_width,,id"])),
        &["--features", "empty"],
    );
    fails(
        &strs(&train_cpu(data, &["--delimiter", ":"])),
        &["--delimiter", "tab"],
    );
    fails(
        &strs(&train_cpu(data, &["--features", "a", "--ignore", "id"])),
        &["--features", "--ignore"],
    );
}

/// Writes every `every`-th row of `path` to test.csv and the rest to train.csv.
fn split_csv(dir: &Path, path: &str, every: usize) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let (mut train, mut test) = (vec![header], vec![header]);
    for (i, line) in lines.enumerate() {
        if i % every == 0 {
            test.push(line);
        } else {
            train.push(line);
        }
    }
    let (a, b) = (dir.join("train.csv"), dir.join("test.csv"));
    std::fs::write(&a, train.join("\n")).expect("write");
    std::fs::write(&b, test.join("\n")).expect("write");
    (a.display().to_string(), b.display().to_string())
}

#[test]
fn regression_reports_mse() {
    let dir = scratch("regress");
    let mut csv = String::from("a,b,y\n");
    for i in 0..200 {
        let (a, b) = ((i % 17) as f32 / 17.0, (i % 11) as f32 / 11.0);
        csv += &format!("{a},{b},{}\n", 2.0 * a - b + 0.25);
    }
    let path = dir.join("line.csv");
    std::fs::write(&path, csv).expect("write");
    let r = report(&[
        "train",
        "--data",
        path.to_str().unwrap(),
        "--layers",
        "",
        "--epochs",
        "60",
        "--lr",
        "0.05",
        "--json",
        "--out",
        dir.join("line.safetensors").to_str().unwrap(),
    ]);
    assert!(
        r.get("accuracy").is_none(),
        "regression has no accuracy: {r}"
    );
    assert!(number(&r, "mse") < 1e-3, "{r}");
    // A confusion-matrix plot of a regression model is refused before anything is evaluated or written.
    let png = dir.join("confusion.png");
    fails(
        &[
            "eval",
            "--model",
            dir.join("line.safetensors").to_str().unwrap(),
            "--data",
            path.to_str().unwrap(),
            "--device",
            "cpu",
            "--plot",
            png.to_str().unwrap(),
        ],
        &["--plot", "confusion matrix", "regression model"],
    );
    assert!(!png.exists(), "nothing is written");
}

#[test]
fn checkpoint_eval_predict_and_init() {
    let dir = scratch("checkpoint");
    let model = dir.join("iris.safetensors");
    let plot = dir.join("curves.png");
    let m = model.to_str().unwrap();
    let r = report(&[
        "train",
        "--data",
        &iris(),
        "--layers",
        "8",
        "--epochs",
        "30",
        "--lr",
        "0.01",
        "--out",
        m,
        "--plot",
        plot.to_str().unwrap(),
        "--json",
    ]);
    // The checkpoint: PyTorch nn.Linear names and [out, in] shapes, metadata as JSON.
    let bytes = std::fs::read(&model).expect("checkpoint written");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let shapes: Vec<(String, Vec<usize>)> = [
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
    ]
    .iter()
    .map(|n| {
        (
            n.to_string(),
            file.tensor(n).expect("tensor").shape().to_vec(),
        )
    })
    .collect();
    assert_eq!(shapes[0].1, vec![8, 4]);
    assert_eq!(shapes[1].1, vec![8]);
    assert_eq!(shapes[2].1, vec![3, 8]);
    assert_eq!(shapes[3].1, vec![3]);
    let (_, meta) = wgtrain::checkpoint::load(&model)
        .map(|(n, _, m)| (n, m))
        .expect("loads");
    assert_eq!(meta.class_names, ["setosa", "versicolor", "virginica"]);
    assert_eq!(meta.feature_names.len(), 4);
    assert!(meta.standardizer.is_some());
    assert_eq!(
        std::fs::read(&plot).expect("plot written")[..8],
        *b"\x89PNG\r\n\x1a\n"
    );

    // eval on the training data gives back the final training accuracy's neighbourhood.
    let e = report(&["eval", "--model", m, "--data", &iris(), "--json"]);
    assert!(number(&e, "accuracy") > 0.8, "{e}");
    assert_eq!(e["epochs"], 30);
    assert!((number(&e, "loss") - number(&r, "loss")).abs() < 0.2);

    // predict: one CSV row per input row, a class name, then the three probabilities summing to 1.
    let out = ok(&["predict", "--model", m, "--data", &iris()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "prediction,p_setosa,p_versicolor,p_virginica");
    assert_eq!(lines.len(), 151);
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first[0], "setosa");
    let total: f32 = first[1..]
        .iter()
        .map(|p| p.parse::<f32>().expect("number"))
        .sum();
    assert!((total - 1.0).abs() < 1e-4);

    // --init continues from the checkpoint: its first epoch starts where the saved model ended.
    let fresh = report(&[
        "train",
        "--data",
        &iris(),
        "--layers",
        "8",
        "--epochs",
        "1",
        "--lr",
        "0.01",
        "--json",
    ]);
    let resumed = report(&[
        "train",
        "--data",
        &iris(),
        "--layers",
        "8",
        "--epochs",
        "1",
        "--lr",
        "0.01",
        "--init",
        m,
        "--json",
    ]);
    assert!(
        number(&resumed, "loss") < number(&fresh, "loss") * 0.8,
        "resumed {resumed} vs fresh {fresh}"
    );

    // --init from a wgtrain model of another architecture names the layer and both widths.
    fails(
        &[
            "train",
            "--data",
            &iris(),
            "--layers",
            "16",
            "--epochs",
            "1",
            "--init",
            m,
        ],
        &["--init", "layer 0 is dense:8, this run's is dense:16"],
    );
}

/// The same seed on the CPU and on the fallback adapter trains to the same parameters, within tolerance.
#[test]
fn cpu_and_fallback_train_the_same_model() {
    if gpu_backend().is_none() {
        return;
    }
    let dir = scratch("devices");
    let mut params = Vec::new();
    for device in ["cpu", "fallback"] {
        let out = dir.join(format!("{device}.safetensors"));
        let r = report(&[
            "train",
            "--data",
            &iris(),
            "--epochs",
            "5",
            "--layers",
            "8",
            "--device",
            device,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(r["device"], if device == "cpu" { "cpu" } else { "wgpu" });
        let (_, layers, _) = wgtrain::checkpoint::load(&out).expect("loads");
        params.push(layers);
    }
    for (g, c) in params[1].iter().zip(&params[0]) {
        assert_close("weights", &g.weights, &c.weights, TRAINING);
        assert_close("bias", &g.bias, &c.bias, TRAINING);
    }
}

#[test]
fn logistic_regression_with_no_hidden_layer() {
    let r = report(&[
        "train",
        "--data",
        &format!("{DATA}/breast_cancer.csv"),
        "--layers",
        "",
        "--epochs",
        "30",
        "--lr",
        "0.01",
        "--val-split",
        "0.2",
        "--json",
    ]);
    assert!(number(&r, "val_accuracy") > 0.93, "{r}");
}

#[test]
fn summary_and_devices() {
    let out = ok(&[
        "summary",
        "--inputs",
        "3",
        "--layers",
        "5,5,5",
        "--outputs",
        "2",
    ]);
    assert!(out.contains("total parameters: 92"), "{out}");
    let out = ok(&["devices"]);
    assert!(out.contains("auto picks:"), "{out}");
}

#[test]
fn progress_bar_stays_off_a_pipe() {
    let output = run(&["train", "--data", &iris(), "--epochs", "3"]);
    assert!(output.status.success());
    assert!(
        stdout(&output).contains("epoch 3/3 loss="),
        "{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).is_empty(),
        "stderr is not a terminal, yet got: {}",
        stderr(&output)
    );
    let quiet = run(&["train", "--data", &iris(), "--epochs", "3", "--quiet"]);
    assert!(!stdout(&quiet).contains("epoch"), "{}", stdout(&quiet));
}

#[test]
fn bad_input_is_one_error_line_and_exit_2() {
    let dir = scratch("errors");
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "a,b,y\n1,2,x\n3,oops,y\n").expect("write");
    let b = bad.to_str().unwrap();
    fails(
        &["train", "--data", "/nonexistent/data.csv"],
        &["/nonexistent/data.csv"],
    );
    fails(
        &["train", "--data", &iris(), "--target", "colour"],
        &["colour", "species"],
    );
    fails(&["train", "--data", b], &["line 3", "`b`", "oops"]);
    fails(&["train", "--data", &iris(), "--lr", "0"], &["--lr", "> 0"]);
    fails(&["train", "--data", &iris(), "--lr", "-1"], &["--lr"]);
    fails(
        &["train", "--data", &iris(), "--epochs", "0"],
        &["--epochs"],
    );
    fails(
        &["train", "--data", &iris(), "--batch-size", "0"],
        &["--batch-size"],
    );
    fails(
        &["train", "--data", &iris(), "--val-split", "1"],
        &["--val-split", "[0, 1)"],
    );
    fails(
        &["train", "--data", &iris(), "--layers", "8,0"],
        &["layer 2", "got 0"],
    );
    fails(
        &["train", "--data", &iris(), "--activation", "swish"],
        &["swish"],
    );
    fails(
        &["train", "--data", &iris(), "--optimizer", "lamb"],
        &["lamb"],
    );
    fails(&["train", "--data", &iris(), "--device", "tpu"], &["tpu"]);
    fails(&["train", "--data", &iris(), "--bogus"], &["--bogus"]);
    fails(&["eval", "--model", b, "--data", &iris()], &["safetensors"]);
}

const CNN: &str = "conv:16:3:pad=1,relu,maxpool:2,conv:32:3:pad=1,relu,maxpool:2,flatten,dense:10";

/// `summary --input-shape --arch` shows every layer's output shape and parameter count (PyTorch's
/// `nn.Sequential` of the same layers has 20490 parameters), with no --inputs or --outputs.
#[test]
fn summary_of_an_arch_spec() {
    let out = ok(&[
        "summary",
        "--input-shape",
        "1,28,28",
        "--arch",
        CNN,
        "--output",
        "softmax",
    ]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for row in [
        vec!["input", "1x28x28"],
        vec!["0", "conv:16:3:pad=1", "16x28x28", "160"],
        vec!["2", "maxpool:2", "16x14x14", "0"],
        vec!["3", "conv:32:3:pad=1", "32x14x14", "4640"],
        vec!["6", "flatten", "1568", "0"],
        vec!["7", "dense:10", "10", "15690"],
        vec!["8", "softmax", "10", "0"],
    ] {
        assert!(rows.contains(&row), "{row:?} in {out}");
    }
    assert!(out.contains("total parameters: 20490"), "{out}");
}

/// A CNN from `--arch` on CSV rows given a shape (`digits.csv` as 1×8×8), saved with PyTorch's names and
/// layouts, evaluated and used for predictions; the spec can come from a file with comments and newlines.
#[test]
fn train_a_cnn_from_an_arch_spec() {
    let dir = scratch("arch");
    let digits = format!("{DATA}/digits.csv");
    let spec = dir.join("net.arch");
    std::fs::write(
        &spec,
        "# a small CNN for 8x8 digits\nconv:8:3:pad=1, relu\nmaxpool:2\nflatten,dense:10\n",
    )
    .expect("spec written");
    let model = dir.join("cnn.safetensors");
    let r = report(&strs(&train_cpu(
        &digits,
        &[
            "--arch",
            &format!("@{}", spec.display()),
            "--input-shape",
            "1,8,8",
            "--epochs",
            "5",
            "--out",
            &text(&model),
            "--json",
        ],
    )));
    assert!(number(&r, "accuracy") > 0.8, "{r}");
    let bytes = std::fs::read(&model).expect("model written");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let shape = |name: &str| file.tensor(name).expect(name).shape().to_vec();
    assert_eq!(shape("layers.0.weight"), [8, 1, 3, 3]);
    assert_eq!(shape("layers.0.bias"), [8]);
    assert_eq!(shape("layers.4.weight"), [10, 128]);
    let m = text(&model);
    let e = report(&[
        "eval", "--model", &m, "--data", &digits, "--json", "--device", "cpu",
    ]);
    assert!(
        (number(&e, "accuracy") - number(&r, "accuracy")).abs() < 0.1,
        "{e}"
    );
    let predictions = ok(&[
        "predict", "--model", &m, "--data", &digits, "--device", "cpu",
    ]);
    assert_eq!(
        predictions.lines().count(),
        1798,
        "a header and one line per row"
    );
}

#[test]
fn bad_arch_specs_are_one_error_line() {
    let digits = format!("{DATA}/digits.csv");
    let train = |extra: &[&str]| train_cpu(&digits, extra);
    for (extra, words) in [
        (
            &[
                "--arch",
                "conv:8:3,relu,pool:2,dense:10",
                "--input-shape",
                "1,8,8",
            ][..],
            &["--arch", "`pool:2`", "unknown layer kind", "maxpool"][..],
        ),
        (
            &["--arch", "conv:8,dense:10", "--input-shape", "1,8,8"],
            &["--arch", "`conv:8`", "conv:OUT:K"],
        ),
        (
            &[
                "--arch",
                "conv:8:3:pad=x,dense:10",
                "--input-shape",
                "1,8,8",
            ],
            &["--arch", "pad must be a whole number", "`x`"],
        ),
        (
            &[
                "--arch",
                "conv:8:3:padding=1,dense:10",
                "--input-shape",
                "1,8,8",
            ],
            &["unknown option `padding`", "stride or pad"],
        ),
        (
            &["--arch", "dense:32,relu"],
            &[
                "--arch",
                "must end with the output layer dense:N",
                "--output",
            ],
        ),
        (
            &["--arch", "dense:32,relu,dense:3"],
            &["--arch", "dense:3 gives 3 outputs", "needs 10"],
        ),
        (
            &["--arch", "conv:8:3,dense:10", "--input-shape", "1,8,8"],
            &["layer 1 (dense:10)", "flat input", "flatten", "8x6x6"],
        ),
        (
            &["--arch", "conv:8:3,flatten,dense:10"],
            &["layer 0 (conv:8:3)", "an image", "--input-shape", "got 64"],
        ),
        (
            &[
                "--arch",
                "conv:8:9,flatten,dense:10",
                "--input-shape",
                "1,8,8",
            ],
            &["layer 0 (conv:8:9)", "9x9 kernel", "1x8x8"],
        ),
        (
            &["--arch", "flatten,dense:10", "--input-shape", "1,8,9"],
            &["--input-shape", "1x8x9 holds 72 values", "64"],
        ),
        (
            &["--arch", "flatten,dense:10", "--input-shape", "64"],
            &["--input-shape", "expected C,H,W", "or T,D"],
        ),
        (&["--arch", "@/nonexistent/spec"], &["/nonexistent/spec"]),
        (&["--input-shape", "1,8,8"], &["--arch"]),
        (
            &["--arch", "dense:10", "--layers", "5"],
            &["--layers", "--arch"],
        ),
    ] {
        fails(&strs(&train(extra)), words);
    }
    fails(&["summary", "--arch", "flatten,dense:2"], &["--inputs"]);
}

/// Regressions from an attack on `--arch`: batch norm on one value per channel (PyTorch refuses it too) is
/// refused before training, for the full batches and for the last one; `--input-shape` needs `--arch`;
/// an empty token is named by position; a different dropout rate may fine-tune an `--init` model.
#[test]
fn arch_attack_regressions() {
    let iris = iris();
    fails(
        &strs(&train_cpu(
            &iris,
            &["--arch", "batchnorm,dense:3", "--batch-size", "1"],
        )),
        &[
            "--batch-size",
            "batchnorm",
            "more than one value per channel",
        ],
    );
    fails(
        &strs(&train_cpu(
            &iris,
            &["--arch", "batchnorm,dense:3", "--batch-size", "149"],
        )),
        &["--batch-size", "the last batch has 1 of the 150"],
    );
    let digits = format!("{DATA}/digits.csv");
    fails(
        &strs(&train_cpu(
            &digits,
            &["--input-shape", "1,8,8", "--layers", "32"],
        )),
        &["--input-shape", "--arch"],
    );
    fails(
        &[
            "summary",
            "--input-shape",
            "1,8,8",
            "--outputs",
            "3",
            "--layers",
            "16",
        ],
        &["--input-shape", "--arch"],
    );
    fails(
        &strs(&train_cpu(&iris, &["--arch", "dense:8,,dense:3"])),
        &["--arch", "layer 1 of the spec is empty"],
    );
    let dir = scratch("arch-regressions");
    let model = dir.join("dropout.safetensors");
    let spec = "dense:16,relu,dropout:0.2,dense:3";
    ok(&strs(&train_cpu(
        &iris,
        &["--arch", spec, "--out", &text(&model)],
    )));
    ok(&strs(&train_cpu(
        &iris,
        &[
            "--arch",
            "dense:16,relu,dropout:0.5,dense:3",
            "--init",
            &text(&model),
        ],
    )));
    fails(
        &strs(&train_cpu(
            &iris,
            &["--arch", "dense:16,relu,dense:3", "--init", &text(&model)],
        )),
        &["--init", "(see --layers or --arch)"],
    );
}

/// `devices` lists every adapter with its index (`--json`: one object); `--device gpu:N` and
/// `--device NAME` select one; an index or a name that matches none is one error line.
#[test]
fn adapters_are_listed_and_chosen_by_index_or_name() {
    let listing = ok(&["devices", "--json"]);
    let value: serde_json::Value = serde_json::from_str(listing.trim()).expect("one JSON object");
    let adapters = value["adapters"].as_array().expect("an array").clone();
    for (i, a) in adapters.iter().enumerate() {
        assert_eq!(a["index"], i);
        for key in ["name", "api", "device_type", "driver", "max_buffer_size"] {
            assert!(!a[key].is_null(), "{key} in {a}");
        }
    }
    let text = ok(&["devices"]);
    assert!(
        text.lines().last().expect("a line").contains("picks:"),
        "{text}"
    );
    let count = adapters.len();
    fails(
        &[
            "train",
            "--data",
            &iris(),
            "--device",
            &format!("gpu:{count}"),
            "--epochs",
            "1",
        ],
        &[&format!("gpu:{count}"), "`wgtrain devices` lists them"],
    );
    fails(
        &[
            "train",
            "--data",
            &iris(),
            "--device",
            "no-such-adapter",
            "--epochs",
            "1",
        ],
        &["no adapter name contains `no-such-adapter`", "gpu:N"],
    );
    if !have_fallback_adapter() {
        return;
    }
    // The software adapter, by its index and by part of its name.
    let (index, name) = adapters
        .iter()
        .find(|a| a["device_type"] == "cpu")
        .map(|a| {
            (
                a["index"].as_u64().expect("index"),
                a["name"].as_str().expect("name").to_string(),
            )
        })
        .expect("the fallback adapter is listed");
    let part: String = name.chars().take(5).collect();
    for choice in [format!("gpu:{index}"), part.to_uppercase()] {
        let r = report(&[
            "train",
            "--data",
            &iris(),
            "--device",
            &choice,
            "--epochs",
            "1",
            "--json",
        ]);
        assert_eq!(r["adapter"], name.as_str(), "--device {choice}");
    }
}

/// `bench --quick` on the CPU: JSON lines of every kind the MLP workload has, then a `# ` summary whose
/// rows repeat each epoch line's median. Seconds in a release build.
#[test]
fn bench_quick_prints_json_lines_then_a_summary() {
    let args = ["bench", "--device", "cpu", "--quick", "--workload", "mlp"];
    let out = succeeded(&args, &run_with(bounded(&args), None));
    let (summary, json): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| l.starts_with('#'));
    let lines: Vec<serde_json::Value> = json
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of_kind = |kind: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["kind"] == kind).collect()
    };
    for line in &lines {
        assert!(line["kind"].is_string(), "{line}");
    }
    assert_eq!(of_kind("device").len(), 1, "{out}");
    assert!(!of_kind("matmul").is_empty(), "{out}");
    let epochs = of_kind("epoch");
    assert_eq!(epochs.len(), 2, "the two MLPs: {out}");
    assert_eq!(of_kind("cold_start").len(), 1, "{out}");
    assert!(summary.len() > epochs.len(), "{out}");
    // The summary follows the JSON lines.
    let first_summary = out.lines().position(|l| l.starts_with('#')).unwrap_or(0);
    assert!(first_summary >= lines.len(), "{out}");
    for epoch in epochs {
        assert_eq!(epoch["device"], "cpu");
        let (ms, gflops) = (number(epoch, "median_ms"), number(epoch, "gflops"));
        assert!(ms.is_finite() && ms > 0.0, "{epoch}");
        assert!(gflops.is_finite() && gflops > 0.0, "{epoch}");
        let layers = epoch["layers"].as_str().expect("layers");
        let ms = format!("{:.2}", epoch["median_ms"].as_f64().expect("median_ms"));
        assert!(
            summary.iter().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.contains(&layers) && cells.contains(&ms.as_str())
            }),
            "no summary row for {layers} at {ms} ms: {summary:?}"
        );
    }
}

#[test]
fn bench_rejects_an_unknown_workload_conv_or_data_file() {
    fails(&["bench", "--workload", "bogus"], &["--workload", "mlp"]);
    fails(
        &["bench", "--device", "cpu", "--conv", "sideways"],
        &["--conv", "im2col"],
    );
    let missing = "/nonexistent/mnist-images-idx3-ubyte.gz";
    fails(&["bench", "--device", "cpu", "--data", missing], &[missing]);
}

/// `--input-shape T,D` reads each CSV row as a sequence of T positions of D features: dense layers act on
/// every position, and `summary`, `inspect`, `predict` and `export` work on the model (ONNX Runtime's
/// check of the export is in tests/onnx.rs).
#[test]
fn sequences_from_the_command_line() {
    let dir = scratch("sequence");
    let mut csv = String::from("a,b,c,d,e,f,y\n");
    for i in 0..90 {
        let v: Vec<f32> = (0..6)
            .map(|j| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let y = u8::from(v[0] + v[2] + v[4] > 0.0);
        let cells: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        csv += &format!("{},{y}\n", cells.join(","));
    }
    let data = dir.join("seq.csv");
    std::fs::write(&data, csv).expect("write");
    let (data, model) = (text(&data), text(&dir.join("seq.safetensors")));
    let arch = "dense:8,relu,flatten,dense:1";
    let summary = ok(&["summary", "--input-shape", "3,2", "--arch", arch]);
    assert!(summary.contains("3x8 (positions x features)"), "{summary}");
    assert!(summary.contains("total parameters: 49"), "{summary}");
    let args = train_cpu(
        &data,
        &[
            "--arch",
            arch,
            "--input-shape",
            "3,2",
            "--epochs",
            "20",
            "--lr",
            "0.01",
            "--out",
            &model,
            "--json",
        ],
    );
    assert!(number(&report(&strs(&args)), "accuracy") > 0.7);
    let listing = ok(&["inspect", "--model", &model, "--top", "2"]);
    assert!(
        listing.contains("input sequences of 3x2") && listing.contains("d0"),
        "{listing}"
    );
    let predictions = ok(&[
        "predict", "--model", &model, "--data", &data, "--device", "cpu",
    ]);
    assert_eq!(predictions.lines().count(), 91);
    let onnx = text(&dir.join("seq.onnx"));
    ok(&["export", "--model", &model, "--onnx", &onnx]);
    fails(
        &strs(&train_cpu(
            &data,
            &["--arch", arch, "--input-shape", "3,2,1,1"],
        )),
        &["--input-shape", "C,H,W", "T,D"],
    );
}
