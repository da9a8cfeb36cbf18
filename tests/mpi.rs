//! `wgtrain train --distributed` under `mpirun` (feature `mpi`; `scripts/test.sh` runs these with Open MPI):
//! two ranks of batch B train the weights of one process of batch 2B over whole epochs with a short last
//! batch, on the CPU and on lavapipe; a rank that dies ends the job with an error, not a hang, and the last
//! checkpoint stays whole and resumes.
#![cfg(feature = "mpi")]

mod common;

use common::cli::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Relative agreement asked of two ranks against one process.
const REL: f32 = 1e-5;
/// Longer than any of these jobs takes; a job still running then is hung.
const JOB_LIMIT: Duration = Duration::from_secs(120);

fn mpirun(ranks: usize) -> Command {
    let mut command = Command::new("mpirun");
    command
        .args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string())
        .env("NODEVICE_SELECT", "1")
        .env_remove("WGTRAIN_DEVICE");
    command
}

/// Runs `command` to its end, failing the test if it outlives [`JOB_LIMIT`]; returns its exit code and
/// output.
fn finish(mut command: Command) -> (Option<i32>, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mpirun (install openmpi-bin)");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            return (status.code(), text);
        }
        if start.elapsed() > JOB_LIMIT {
            let _ = child.kill();
            panic!("the MPI job hung for {JOB_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn weights(path: &Path) -> Vec<f32> {
    let (_, params, _) = wgtrain::checkpoint::load(path).expect("a whole checkpoint");
    params
        .iter()
        .flat_map(|l| l.weights.iter().chain(&l.bias).copied())
        .collect()
}

#[test]
fn two_ranks_train_the_weights_of_one_process_on_the_global_batch() {
    let dir = scratch("mpi-parity");
    // 150 rows: global batches of 2 × 16 = 32, the last 22 split 16 and 6; and 2 × 7 = 14, the last 10 split
    // 7 and 3.
    for device in ["cpu", "fallback"] {
        if device == "fallback" && common::gpu_backend().is_none() {
            continue;
        }
        for (batch, optimizer) in [(16, "adam"), (7, "momentum")] {
            let one = dir.join(format!("one-{device}-{batch}.safetensors"));
            let two = dir.join(format!("two-{device}-{batch}.safetensors"));
            let common_args = |out: &Path, batch: usize| -> Vec<String> {
                let batch = batch.to_string();
                [
                    "train",
                    "--data",
                    &iris(),
                    "--epochs",
                    "4",
                    "--layers",
                    "9",
                    "--device",
                    device,
                    "--optimizer",
                    optimizer,
                    "--lr",
                    "0.01",
                    "--seed",
                    "5",
                    "--batch-size",
                    &batch,
                    "--val-split",
                    "0.2",
                    "--quiet",
                    "--out",
                    out.to_str().unwrap(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            };
            ok(&strs(&common_args(&one, 2 * batch)));
            let mut job = mpirun(2);
            job.arg(env!("CARGO_BIN_EXE_wgtrain"))
                .args(common_args(&two, batch))
                .arg("--distributed");
            let (code, text) = finish(job);
            assert_eq!(code, Some(0), "{text}");
            let (a, b) = (weights(&two), weights(&one));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= REL * y.abs().max(1e-2),
                    "{device}, batch {batch}: parameter {i}: {x} on two ranks, {y} in one process"
                );
            }
        }
    }
}

#[test]
fn a_dead_rank_ends_the_job_and_the_checkpoint_resumes() {
    let dir = scratch("mpi-failure");
    let checkpoint = dir.join("run.safetensors");
    let ck = checkpoint.to_str().unwrap();
    let train = [
        "train",
        "--data",
        &iris(),
        "--epochs",
        "100000",
        "--layers",
        "9",
        "--device",
        "cpu",
        "--batch-size",
        "8",
        "--quiet",
        "--save-state",
        "--out",
        ck,
        "--distributed",
    ];
    // Rank 1 is killed once rank 0 has written its first checkpoint; rank 0 is waiting for it then.
    let script = r#"exe=$1; ck=$2; shift 2
"$exe" "$@" & pid=$!
if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
    while [ ! -s "$ck" ]; do sleep 0.05; done
    sleep 0.3
    kill -9 "$pid"
fi
wait "$pid""#;
    let mut job = mpirun(2);
    job.args(["sh", "-c", script, "sh", env!("CARGO_BIN_EXE_wgtrain"), ck])
        .args(train);
    let started = Instant::now();
    let (code, text) = finish(job);
    assert_ne!(code, Some(0), "the job must fail when a rank dies: {text}");
    assert!(started.elapsed() < JOB_LIMIT);
    // The last checkpoint is whole, and continues the run under two ranks.
    let (_, _, meta) = wgtrain::checkpoint::load(&checkpoint).expect("the checkpoint is whole");
    let done = meta.epochs;
    assert!(done >= 1);
    let more = (done + 2).to_string();
    let mut resume = mpirun(2);
    resume
        .arg(env!("CARGO_BIN_EXE_wgtrain"))
        .args(["train", "--resume", ck, "--epochs", &more, "--quiet"]);
    let (code, text) = finish(resume);
    assert_eq!(code, Some(0), "{text}");
    let (_, _, meta) = wgtrain::checkpoint::load(&checkpoint).unwrap();
    assert_eq!(meta.epochs, done + 2);
    // One process cannot continue it: its global batch would be half the saved run's.
    let out = dir.join("single.safetensors");
    let args = [
        "train",
        "--resume",
        ck,
        "--epochs",
        "100001",
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, text) = {
        let mut single = mpirun(1);
        single.arg(env!("CARGO_BIN_EXE_wgtrain")).args(args);
        finish(single)
    };
    assert_ne!(code, Some(0));
    assert!(text.contains("mpirun -np 2"), "{text}");
}

#[test]
fn the_bench_times_the_allreduce_and_the_epochs_at_two_ranks() {
    let mut job = mpirun(2);
    job.arg(env!("CARGO_BIN_EXE_wgtrain")).args([
        "bench",
        "--distributed",
        "--device",
        "cpu",
        "--quick",
    ]);
    let (code, text) = finish(job);
    assert_eq!(code, Some(0), "{text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let allreduce: Vec<_> = lines.iter().filter(|l| l["kind"] == "allreduce").collect();
    assert_eq!(allreduce.len(), 3, "{text}");
    // The step's buffer of 784-128-10: its 101770 parameters as the device stores them (each tensor
    // padded to 64 floats) and the normaliser, 4 bytes each.
    let network = wgtrain::Network::builder(784)
        .dense(128, wgtrain::Activation::Relu)
        .dense(10, wgtrain::Activation::Softmax)
        .build(wgtrain::Loss::Ce)
        .unwrap();
    assert_eq!(network.parameter_count(), 101_770);
    assert_eq!(allreduce[0]["bytes"], 4 * (network.param_len() as u64 + 1));
    for line in &allreduce {
        assert_eq!(line["ranks"], 2);
        assert!(line["ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0 && ms.is_finite()));
    }
    let epochs: Vec<_> = lines
        .iter()
        .filter(|l| l["kind"] == "epoch_distributed")
        .collect();
    assert_eq!(epochs.len(), 2, "{text}");
    assert_eq!(epochs[0]["global_batch"], 128);
    assert_eq!(epochs[0]["steps"], 2000_usize.div_ceil(128));
    // Only rank 0 prints.
    assert_eq!(lines.len(), 5, "{text}");
}
