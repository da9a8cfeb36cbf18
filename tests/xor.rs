//! The XOR tutorial network converges on every device, and the devices agree.

mod common;

use common::gpu_backend;
use wgtrain::{Activation, Backend, CpuBackend, Loss, Model, Network, TrainConfig};

const X: [f32; 12] = [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0];
const Y: [f32; 4] = [0.0, 1.0, 1.0, 0.0];

/// Trains 3 → 4 sigmoid → 1 sigmoid with SSE for 2500 full-batch iterations, as `examples/xor.rs` does.
fn xor(backend: Box<dyn Backend>) -> Vec<f32> {
    let net = Network::builder(3)
        .dense(4, Activation::Sigmoid)
        .dense(1, Activation::Sigmoid)
        .build(Loss::Sse)
        .expect("valid");
    let mut model = Model::with_backend(net, backend, 1).expect("model");
    let config = TrainConfig {
        iterations: 2500,
        batch_size: None,
        learning_rate: 1.0,
        ..TrainConfig::default()
    };
    model.train(&X, &Y, &config).expect("train");
    assert!(
        model.loss().expect("loss") < 0.01,
        "loss did not fall below 0.01"
    );
    let predictions = model.predict(&X).expect("predict");
    let rounded: Vec<f32> = predictions.iter().map(|p| p.round()).collect();
    assert_eq!(
        rounded,
        Y,
        "predictions {predictions:?} on {}",
        model.device_info()
    );
    predictions
}

#[test]
fn xor_converges_on_cpu() {
    xor(Box::new(CpuBackend::new()));
}

#[test]
fn xor_converges_on_gpu_and_agrees_with_cpu() {
    let Some(gpu) = gpu_backend() else { return };
    let on_gpu = xor(Box::new(gpu));
    let on_cpu = xor(Box::new(CpuBackend::new()));
    for (g, c) in on_gpu.iter().zip(&on_cpu) {
        assert!((g - c).abs() < 1e-3, "gpu {on_gpu:?} vs cpu {on_cpu:?}");
    }
}
