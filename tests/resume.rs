//! `--save-state` and `--resume` through the CLI: a run cut in two equals the unbroken run, bitwise on the
//! CPU backend and within tolerance on the test adapter; flags that contradict the saved run are errors.

mod common;

use common::cli::*;
use common::{assert_close, TRAINING};
use std::path::Path;

fn params(path: &str) -> Vec<wgtrain::LayerParams> {
    wgtrain::checkpoint::load(Path::new(path)).expect("load").1
}

/// The flags of the runs below: a validation split, a plateau schedule and RMSprop with momentum, so that
/// the shuffles, the schedule's state and the optimizer's state all have to carry over.
fn flags<'a>(device: &'a str, epochs: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        IRIS,
        "--device",
        device,
        "--epochs",
        epochs,
        "--seed",
        "3",
        "--val-split",
        "0.2",
        "--schedule",
        "plateau",
        "--plateau-patience",
        "1",
        "--optimizer",
        "rmsprop",
        "--momentum",
        "0.5",
        "--batch-size",
        "16",
        "--out",
        out,
        "--json",
    ]
}

const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv");

#[test]
fn a_run_cut_in_two_equals_the_unbroken_run() {
    let dir = scratch("resume");
    let mut devices = vec!["cpu"];
    if have_fallback_adapter() {
        devices.push("fallback");
    }
    for device in devices {
        let full = text(&dir.join(format!("full-{device}.safetensors")));
        let half = text(&dir.join(format!("half-{device}.safetensors")));
        let unbroken = report(&flags(device, "10", &full));
        let mut first = flags(device, "5", &half);
        first.push("--save-state");
        let first = report(&first);
        assert_eq!(first["epochs"], 5);
        // The resumed run repeats some of the first run's flags, and writes over its checkpoint; on the
        // CPU it goes in two legs, the second taking its total from the first's saved flags.
        if device == "cpu" {
            report(&[
                "train", "--resume", &half, "--epochs", "8", "--device", device, "--json",
            ]);
            let (_, _, meta) = wgtrain::checkpoint::load(Path::new(&half)).expect("load");
            let line = meta.training.expect("a state").command_line;
            assert_eq!(line[line.len() - 2..], ["--epochs", "8"]);
            fails(
                &["train", "--resume", &half, "--device", device],
                &["--epochs", "has trained 8 epochs"],
            );
        }
        let resumed = report(&[
            "train",
            "--resume",
            &half,
            "--epochs",
            "10",
            "--device",
            device,
            "--optimizer",
            "rmsprop",
            "--seed",
            "3",
            "--json",
        ]);
        assert_eq!(resumed["epochs"], 10);
        let (a, b) = (params(&half), params(&full));
        if device == "cpu" {
            assert_eq!(a, b, "the parameters, bit for bit");
            for key in [
                "loss",
                "accuracy",
                "val_loss",
                "val_accuracy",
                "final_learning_rate",
            ] {
                assert_eq!(resumed[key], unbroken[key], "{key}");
            }
        } else {
            for (x, y) in a.iter().zip(&b) {
                assert_close("resumed weights", &x.weights, &y.weights, TRAINING);
                assert_close("resumed bias", &x.bias, &y.bias, TRAINING);
            }
            let loss = |r: &serde_json::Value| r["loss"].as_f64().expect("loss") as f32;
            assert_close("loss", &[loss(&resumed)], &[loss(&unbroken)], TRAINING);
        }
        // The saved history is the whole run's, and the file still predicts like any model.
        let (_, _, meta) = wgtrain::checkpoint::load(Path::new(&half)).expect("load");
        let history = meta.training.expect("a state").history;
        assert_eq!(history.len(), 10);
        assert_eq!(
            history.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        ok(&[
            "predict", "--model", &half, "--data", IRIS, "--device", "cpu",
        ]);
    }
}

#[test]
fn resuming_refuses_what_cannot_continue_the_run() {
    let dir = scratch("resume-errors");
    let half = text(&dir.join("half.safetensors"));
    let mut first = flags("cpu", "4", &half);
    first.push("--save-state");
    report(&first);
    fails(
        &["train", "--resume", &half, "--epochs", "8", "--lr", "0.5"],
        &["--lr", "`0.5` contradicts the saved run", "not given"],
    );
    fails(
        &[
            "train",
            "--resume",
            &half,
            "--epochs",
            "8",
            "--optimizer",
            "adam",
        ],
        &["--optimizer", "`adam` contradicts", "`rmsprop`"],
    );
    fails(
        &["train", "--resume", &half, "--epochs", "4"],
        &["--epochs", "has trained 4 epochs"],
    );
    // Other rows under the same columns: the checksum of the training split tells.
    let changed = dir.join("changed.csv");
    let iris = std::fs::read_to_string(IRIS).expect("iris");
    std::fs::write(&changed, iris.replacen("5.1,3.5", "5.2,3.5", 1)).expect("write");
    fails(
        &[
            "train",
            "--resume",
            &half,
            "--epochs",
            "8",
            "--data",
            &text(&changed),
            "--device",
            "cpu",
        ],
        &["--resume", "not those the saved run trained on"],
    );
    let plain = text(&dir.join("plain.safetensors"));
    ok(&strs(&train_cpu(IRIS, &["--out", &plain])));
    fails(
        &["train", "--resume", &plain, "--epochs", "3"],
        &["--resume", "holds no training state", "--save-state"],
    );
    fails(
        &strs(&train_cpu(IRIS, &["--save-state"])),
        &["--save-state", "no --out"],
    );
    // A cosine schedule spans the run's epochs: it continues only to the total it was planned for.
    let cosine = text(&dir.join("cosine.safetensors"));
    ok(&strs(&train_cpu(
        IRIS,
        &[
            "--epochs",
            "3",
            "--schedule",
            "cosine",
            "--save-state",
            "--out",
            &cosine,
        ],
    )));
    fails(
        &[
            "train", "--resume", &cosine, "--epochs", "6", "--device", "cpu",
        ],
        &["--epochs", "cosine schedule spans its 3 epochs"],
    );
    fails(
        &["train", "--resume", &half, "--init", &plain],
        &["--init", "--resume"],
    );
}

/// Early stopping carries over too: the checkpoint holds the best parameters so far and the latest beside
/// them. Cut after epoch 5, when the best was epoch 4, the resumed run stops where the unbroken one does
/// (epoch 9, keeping epoch 6) with the same parameters, bit for bit; a run that stopped cannot go on.
#[test]
fn early_stopping_resumes_with_its_best_epoch() {
    let dir = scratch("resume-patience");
    let run = |epochs: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            IRIS,
            "--epochs",
            epochs,
            "--val-split",
            "0.3",
            "--patience",
            "3",
            "--lr",
            "0.1",
            "--seed",
            "1",
            "--device",
            "cpu",
            "--out",
            out,
            "--json",
        ];
        args.extend_from_slice(extra);
        report(&args)
    };
    let (full, cut) = (
        text(&dir.join("full.safetensors")),
        text(&dir.join("cut.safetensors")),
    );
    let unbroken = run("30", &full, &[]);
    assert_eq!(
        unbroken["best_epoch"], 6,
        "the figures below assume this run: {unbroken}"
    );
    assert_eq!(unbroken["epochs_run"], 9);
    let first = run("5", &cut, &["--save-state"]);
    assert_eq!(first["best_epoch"], 4);
    let resumed = report(&[
        "train", "--resume", &cut, "--epochs", "30", "--device", "cpu", "--json",
    ]);
    for key in ["best_epoch", "epochs_run", "val_loss", "loss"] {
        assert_eq!(resumed[key], unbroken[key], "{key}");
    }
    assert_eq!(
        params(&cut),
        params(&full),
        "the kept parameters, bit for bit"
    );
    fails(
        &[
            "train", "--resume", &cut, "--epochs", "40", "--device", "cpu",
        ],
        &["stopped early after epoch 9", "since epoch 6"],
    );
}
