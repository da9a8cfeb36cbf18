//! Finite-difference gradient checks on the CPU backend (the reference the GPU is compared against).
//!
//! The activation under test sits in the middle layer, so its backward pass receives a real upstream
//! gradient from the layer above: a backward that silently assumes `∂L/∂output = 1` (true only for the last
//! op) or forgets the chain-rule product with the weights above fails here. Each loss is checked with the
//! output activation it pairs with, including softmax under a non-fused loss (its full Jacobian).

mod common;

use common::uniform;
use wgtrain::{Activation, Device, LayerParams, Loss, Model, Network, Shape};

const ROWS: usize = 5;
const INPUTS: usize = 4;
/// Central-difference step: large enough for f32 round-off in the loss, small enough not to step across a
/// ReLU kink (with 1e-2 a bias step moved a pre-activation across 0 and the check failed on a correct model).
const STEP: f32 = 1e-3;
/// Allowed `|numeric − analytic| / max(|numeric|, |analytic|, FLOOR)` per parameter: 1% of large gradients,
/// 5e-4 absolute for small ones, where f32 round-off in the loss (about 1e-7 · loss / STEP) dominates.
const REL_TOL: f32 = 1e-2;
const FLOOR: f32 = 5e-2;

fn targets(loss: Loss, outputs: usize) -> Vec<f32> {
    match loss {
        Loss::Ce => (0..ROWS).map(|i| (i % outputs) as f32).collect(),
        Loss::Bce => (0..ROWS * outputs).map(|i| (i % 2) as f32).collect(),
        Loss::Sse | Loss::Mse => uniform(11, ROWS * outputs, 0.0, 1.0),
        other => panic!("no gradient-check targets for {other:?}: add them here"),
    }
}

fn flatten(layers: &[LayerParams]) -> Vec<f32> {
    LayerParams::flatten(layers, false)
}

fn unflatten(flat: &[f32], like: &[LayerParams]) -> Vec<LayerParams> {
    LayerParams::unflatten(flat, like, false)
}

/// Compares `Model::gradients` with central differences of `Model::gradients`'s loss for every parameter.
fn check(network: Network, what: &str) {
    let outputs = network.outputs();
    let loss = network.loss();
    let x = uniform(3, ROWS * network.inputs(), -1.5, 1.5);
    let y = targets(loss, outputs);
    let mut model = Model::new(network, Device::Cpu, 5).expect("model");
    // Non-zero biases so the kinks of (leaky) ReLU are not hit by symmetric inputs.
    let mut start = model.parameters().expect("params");
    for (i, layer) in start.iter_mut().enumerate() {
        layer.bias = uniform(20 + i as u64, layer.bias.len(), -0.3, 0.3);
    }
    model.set_parameters(&start).expect("set");
    let (_, analytic) = model.gradients(&x, &y).expect("gradients");
    let analytic = flatten(&analytic);
    let base = flatten(&start);
    let mut numeric = vec![0.0; base.len()];
    for i in 0..base.len() {
        let mut at = |delta: f32| {
            let mut p = base.clone();
            p[i] += delta;
            model.set_parameters(&unflatten(&p, &start)).expect("set");
            model.gradients(&x, &y).expect("loss").0
        };
        numeric[i] = (at(STEP) - at(-STEP)) / (2.0 * STEP);
    }
    let norm: f32 = analytic.iter().map(|g| g * g).sum::<f32>().sqrt();
    assert!(
        norm > 1e-3,
        "{what}: gradient is (nearly) zero, the check would be vacuous"
    );
    for (i, (&a, &n)) in analytic.iter().zip(&numeric).enumerate() {
        let rel = (a - n).abs() / a.abs().max(n.abs()).max(FLOOR);
        assert!(
            rel < REL_TOL,
            "{what}: parameter {i}: backprop {a}, finite difference {n} (relative error {rel})"
        );
    }
}

/// In → 6 tanh → 5 `middle` → 3 `output`: the activation under test is the middle layer.
fn network(middle: Activation, output: Activation, loss: Loss) -> Network {
    Network::builder(INPUTS)
        .dense(6, Activation::Tanh)
        .dense(5, middle)
        .dense(3, output)
        .build(loss)
        .expect("valid network")
}

#[test]
fn every_hidden_activation_in_the_middle() {
    for middle in Activation::ALL.into_iter().filter(|a| a.is_elementwise()) {
        check(
            network(middle, Activation::Tanh, Loss::Mse),
            &format!("middle {middle}"),
        );
    }
    check(
        network(Activation::LeakyRelu(0.3), Activation::Tanh, Loss::Mse),
        "middle leaky_relu(0.3)",
    );
}

#[test]
fn every_loss_with_its_output() {
    check(
        network(Activation::Sigmoid, Activation::Linear, Loss::Sse),
        "sse, linear output",
    );
    check(
        network(Activation::Sigmoid, Activation::Sigmoid, Loss::Sse),
        "sse, sigmoid output",
    );
    check(
        network(Activation::Relu, Activation::Tanh, Loss::Mse),
        "mse, tanh output",
    );
    check(
        network(Activation::Tanh, Activation::Sigmoid, Loss::Bce),
        "bce (fused sigmoid)",
    );
    check(
        network(Activation::LeakyRelu(0.01), Activation::Softmax, Loss::Ce),
        "ce (fused softmax)",
    );
    check(
        network(Activation::Tanh, Activation::Softmax, Loss::Mse),
        "mse, softmax output (Jacobian)",
    );
    check(
        network(Activation::Tanh, Activation::Softmax, Loss::Sse),
        "sse, softmax output (Jacobian)",
    );
}

/// Convolution, pooling, flatten, dropout (its mask fixed: `gradients` does not count a step) and batch
/// norm (batch statistics, whose dependence on every input the backward pass carries), each in the middle of a small CNN on 2×6×6 images, so its input
/// gradient feeds the parameter gradients of the conv layer before it.
#[test]
fn cnn_layers_in_the_middle() {
    let image = Shape::Image {
        channels: 2,
        height: 6,
        width: 6,
    };
    for (what, spec) in [
        (
            "maxpool",
            "conv:3:3:pad=1,tanh,maxpool:2,conv:2:2,tanh,flatten,dense:3,softmax",
        ),
        (
            "overlapping avgpool",
            "conv:3:3:pad=1,tanh,avgpool:2:stride=1,conv:2:3,tanh,flatten,dense:3,softmax",
        ),
        (
            "strided padded conv",
            "conv:3:3:pad=1,tanh,conv:4:3:stride=2:pad=1,leaky_relu:0.1,flatten,dense:3,softmax",
        ),
        (
            "global average pool",
            "conv:3:3,tanh,conv:4:2,sigmoid,gap,flatten,dense:3,softmax",
        ),
        (
            "activation after a pool",
            "conv:3:3:pad=1,maxpool:2,tanh,conv:2:3,flatten,dense:3,softmax",
        ),
        (
            "conv then dense",
            "conv:2:5:stride=1,tanh,flatten,dense:4,tanh,dense:3,softmax",
        ),
    ] {
        let network = Network::builder_for(image)
            .spec(spec)
            .and_then(|b| b.build(Loss::Ce))
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        check(network, what);
    }
}

/// Dense layers over a sequence, in the middle: every position a row of its own, so the weight and bias
/// gradients sum over samples × positions (`nn.Linear` on `[N, T, d]`), with dropout's mask fixed and an
/// activation between them.
#[test]
fn dense_over_a_sequence_in_the_middle() {
    let sequence = Shape::Sequence {
        positions: 3,
        features: 4,
    };
    for spec in [
        "dense:5,tanh,dense:3,sigmoid,flatten,dense:3,softmax",
        "dense:5,leaky_relu:0.1,flatten,dense:4,tanh,dense:3,softmax",
    ] {
        let network = Network::builder_for(sequence)
            .spec(spec)
            .and_then(|b| b.build(Loss::Ce))
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        check(network, &format!("sequence {spec}"));
    }
}
