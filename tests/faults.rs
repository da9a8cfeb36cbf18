//! Faults and limits: divergence stops with the epoch and step and keeps the last good checkpoint; a killed
//! save never leaves a broken file; a lost device is an error, not a panic or a hang; work past wgpu's
//! default limits runs where the adapter allows it; the same seed gives bitwise the same parameters.

mod common;

use common::{assert_close, gpu_backend, uniform, Tolerance};
use std::process::Command;
use wgtrain::{
    Activation, Backend, CpuBackend, Error, Loss, Model, Network, Optimizer, TrainConfig,
};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Linear data that SGD at learning rate 2 blows up on: the loss grows a few orders of magnitude per epoch.
fn exploding_csv(dir: &std::path::Path) -> String {
    let x = uniform(9, 400, -1.0, 1.0);
    let mut csv = String::from("a,b,y\n");
    for r in x.chunks(2) {
        csv += &format!("{},{},{}\n", r[0], r[1], 3.0 * r[0] - 2.0 * r[1] + 0.5);
    }
    let path = dir.join("line.csv");
    std::fs::write(&path, csv).expect("write");
    path.display().to_string()
}

fn wgtrain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .env("NODEVICE_SELECT", "1")
        .output()
        .expect("run wgtrain")
}

#[test]
fn divergence_names_epoch_and_step_and_keeps_the_last_good_checkpoint() {
    let dir = scratch("diverge");
    let data = exploding_csv(&dir);
    let out = dir.join("model.safetensors");
    let mut devices = vec!["cpu"];
    if gpu_backend().is_some() {
        devices.push("fallback");
    }
    for device in devices {
        let _ = std::fs::remove_file(&out);
        let args = [
            "train",
            "--data",
            &data,
            "--layers",
            "",
            "--optimizer",
            "sgd",
            "--lr",
            "2",
            "--epochs",
            "50",
        ];
        let output = wgtrain(
            &[
                &args[..],
                &["--device", device, "--out", out.to_str().unwrap()],
            ]
            .concat(),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.starts_with("error: training diverged:"), "{stderr}");
        let (epoch, step) = parse_epoch_step(&stderr);
        assert!(epoch > 1 && step >= 1, "{stderr}");
        let (_, params, meta) =
            wgtrain::checkpoint::load(&out).expect("the last good checkpoint loads");
        assert_eq!(
            meta.epochs,
            epoch - 1,
            "saved after the last good epoch, on {device}"
        );
        assert!(params
            .iter()
            .all(|l| l.weights.iter().chain(&l.bias).all(|v| v.is_finite())));
    }
}

fn parse_epoch_step(message: &str) -> (usize, usize) {
    let number_after = |word: &str| -> usize {
        let rest = &message[message
            .find(word)
            .unwrap_or_else(|| panic!("no `{word}` in {message}"))
            + word.len()..];
        rest.trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a number")
    };
    (number_after("epoch"), number_after("step"))
}

/// Killing the process at arbitrary moments while it saves a checkpoint every epoch never leaves a file that
/// fails to load: the writes are a temporary file renamed into place.
#[test]
fn killing_a_run_never_leaves_a_broken_checkpoint() {
    let dir = scratch("kill");
    let out = dir.join("model.safetensors");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv");
    for delay_ms in [150, 260, 330, 410, 520, 640, 777, 900] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args([
                "train", "--data", data, "--layers", "512,512", "--epochs", "1000", "--device",
                "cpu", "--quiet",
            ])
            .args(["--out", out.to_str().unwrap()])
            .env("NODEVICE_SELECT", "1")
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().expect("kill");
        child.wait().expect("wait");
        if out.exists() {
            wgtrain::checkpoint::load(&out)
                .unwrap_or_else(|e| panic!("killed after {delay_ms} ms: {e}"));
        }
    }
    assert!(out.exists(), "some epoch should have been saved in 900 ms");
}

#[test]
fn a_lost_device_is_an_error() {
    let Some(gpu) = gpu_backend() else { return };
    let device = gpu.device().clone();
    let net = Network::builder(2)
        .dense(3, Activation::Relu)
        .dense(1, Activation::Linear)
        .build(Loss::Mse)
        .expect("valid");
    let mut model = Model::with_backend(net, Box::new(gpu), 0).expect("model");
    let (x, y) = ([0.5, -1.0, 1.0, 2.0], [1.0, 0.0]);
    model
        .train(&x, &y, &TrainConfig::default())
        .expect("a step before the loss");
    device.destroy();
    let after = model
        .train(&x, &y, &TrainConfig::default())
        .and_then(|()| model.loss().map(|_| ()));
    assert!(
        matches!(after, Err(Error::Gpu(_))),
        "expected a GPU error, got {after:?}"
    );
}

#[test]
fn a_buffer_past_the_adapter_limit_fails_up_front_with_both_sizes() {
    let Some(mut gpu) = gpu_backend() else { return };
    let limit = gpu.device().limits().max_buffer_size;
    let floats = (limit / 4 + 1) as usize;
    let err = gpu.alloc("huge", floats).expect_err("over the limit");
    let message = err.to_string();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert!(
        message.contains(&format!("{limit} bytes"))
            && message.contains(&format!("{} bytes", floats * 4)),
        "{message}"
    );
}

/// Trains a few SGD steps on both backends and compares every parameter.
fn large_layer_parity(network: Network, rows: usize, what: &str) {
    let Some(gpu) = gpu_backend() else { return };
    let x = uniform(1, rows * network.inputs(), -1.0, 1.0);
    let y = uniform(2, rows * network.outputs(), -1.0, 1.0);
    let config = TrainConfig {
        iterations: 2,
        learning_rate: 0.01,
        ..TrainConfig::default()
    };
    let mut on_gpu = Model::with_backend(network.clone(), Box::new(gpu), 0).expect("gpu model");
    let mut on_cpu =
        Model::with_backend(network, Box::new(CpuBackend::new()), 0).expect("cpu model");
    on_gpu
        .train(&x, &y, &config)
        .unwrap_or_else(|e| panic!("{what} on the GPU: {e}"));
    on_cpu.train(&x, &y, &config).expect("cpu");
    let tolerance = Tolerance {
        abs: 1e-5,
        rel: 1e-3,
    };
    assert_close(
        &format!("{what} loss"),
        &[on_gpu.loss().expect("loss")],
        &[on_cpu.loss().expect("loss")],
        tolerance,
    );
    for (g, c) in on_gpu
        .parameters()
        .expect("gpu")
        .iter()
        .zip(&on_cpu.parameters().expect("cpu"))
    {
        assert_close(
            &format!("{what} weights"),
            &g.weights,
            &c.weights,
            tolerance,
        );
        assert_close(&format!("{what} bias"), &g.bias, &c.bias, tolerance);
    }
}

/// 4_200_000 outputs: more than 65535 workgroups of 64 (the bias gradient) and of 8 columns (the matmuls).
#[test]
fn a_layer_wider_than_one_dispatch_dimension() {
    let network = Network::builder(1)
        .dense(4_200_000, Activation::Linear)
        .build(Loss::Mse)
        .expect("valid");
    large_layer_parity(network, 2, "4.2M-unit layer");
}

/// 8192 × 4100 floats = 134,348,800 bytes, past lavapipe's 128 MiB storage-binding limit (the adapter allows the buffer,
/// not one binding of it): the weights, their gradient and the update are bound in windows.
#[test]
fn a_weight_matrix_over_128_mib() {
    let network = Network::builder(8192)
        .dense(4100, Activation::Tanh)
        .build(Loss::Mse)
        .expect("valid");
    large_layer_parity(network, 2, "134 MB weight matrix");
}

/// What cannot be windowed — here one row of activations wider than a binding — fails when the step is
/// prepared, with the size needed and the adapter's limit, never with a wrong result.
#[test]
fn an_activation_row_past_the_binding_limit_fails_up_front() {
    let Some(gpu) = gpu_backend() else { return };
    let limit = gpu.device().limits().max_storage_buffer_binding_size;
    let units = (limit / 4) as usize + 64;
    let network = Network::builder(1)
        .dense(units, Activation::Linear)
        .build(Loss::Mse)
        .expect("valid");
    let mut model =
        Model::with_backend(network, Box::new(gpu), 0).expect("the buffers themselves fit");
    let result = model.train(&[0.5], &vec![0.0; units], &TrainConfig::default());
    let err = result.expect_err("over the binding limit");
    let message = err.to_string();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert!(
        message.contains(&format!("{limit} bytes"))
            && message.contains(&format!("{} bytes", units * 4)),
        "{message}"
    );
}

/// The same seed on the same device gives bitwise the same parameters: sums run in a fixed order.
fn deterministic(make: &dyn Fn() -> Box<dyn Backend>) {
    let net = Network::builder(6)
        .dense(33, Activation::Tanh)
        .dense(17, Activation::Relu)
        .dense(4, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    let x = uniform(5, 300 * 6, -1.0, 1.0);
    let y: Vec<f32> = (0..300).map(|i| (i % 4) as f32).collect();
    let run = || {
        let mut model = Model::with_backend(net.clone(), make(), 11).expect("model");
        let config = TrainConfig {
            iterations: 30,
            batch_size: Some(64),
            learning_rate: 0.01,
            optimizer: Optimizer::ADAM,
            ..TrainConfig::default()
        };
        model.train(&x, &y, &config).expect("train");
        model.parameters().expect("params")
    };
    assert_eq!(run(), run());
}

#[test]
fn same_seed_same_bits_on_cpu() {
    deterministic(&|| Box::new(CpuBackend::new()));
}

#[test]
fn same_seed_same_bits_on_gpu() {
    if gpu_backend().is_none() {
        return;
    }
    deterministic(&|| Box::new(gpu_backend().expect("adapter")));
}
