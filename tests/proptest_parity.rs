//! Property-based parity: random networks (layer widths 1–300), batches (1–257), activations, losses and
//! optimizers give the same forward outputs, gradients and parameters after a few steps on the CPU
//! reference and the wgpu backend. 1000 cases from a fixed seed, each small, on one device.

mod common;

use common::{assert_close, gpu_backend, uniform, Tolerance};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::cell::RefCell;
use wgtrain::{
    Activation, Backend, CpuBackend, LayerParams, Loss, Model, Network, Optimizer, TrainConfig,
};

const CASES: u32 = 1000;

/// Outputs: sums of up to 300 products, then an activation.
const FORWARD: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-3,
};
/// Parameters after a few steps (gradient tolerances are scaled to the gradient's size below).
const PARAMETERS: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-3,
};
/// Adam divides each gradient by its own running magnitude, which turns rounding noise in a near-zero
/// gradient into a step of up to the learning rate: with PyTorch's ε = 1e-8 two correct backends can differ by
/// 2·lr in such elements. The property runs Adam with ε = 1e-3, where small gradients scale linearly, so the
/// comparison stays well-conditioned; the exact default rule is checked in `optimizers.rs`.
const WELL_CONDITIONED_ADAM: Optimizer = Optimizer::Adam {
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-3,
};

#[derive(Clone, Debug)]
struct Case {
    inputs: usize,
    hidden: Vec<(usize, Activation)>,
    outputs: usize,
    output: Activation,
    loss: Loss,
    optimizer: Optimizer,
    batch: usize,
    seed: u64,
}

fn hidden_activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Linear),
        Just(Activation::Relu),
        (0.0f32..0.5).prop_map(Activation::LeakyRelu),
        Just(Activation::Sigmoid),
        Just(Activation::Tanh),
    ]
}

/// An output activation with a loss that may follow it.
fn head() -> impl Strategy<Value = (Activation, Loss)> {
    prop_oneof![
        Just((Activation::Linear, Loss::Mse)),
        Just((Activation::Linear, Loss::Sse)),
        Just((Activation::Tanh, Loss::Mse)),
        Just((Activation::Sigmoid, Loss::Bce)),
        Just((Activation::Sigmoid, Loss::Sse)),
        Just((Activation::Softmax, Loss::Ce)),
        Just((Activation::Softmax, Loss::Mse)),
    ]
}

fn optimizer() -> impl Strategy<Value = Optimizer> {
    prop_oneof![
        Just(Optimizer::Sgd),
        Just(Optimizer::Momentum { momentum: 0.9 }),
        Just(WELL_CONDITIONED_ADAM)
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=300,
        prop::collection::vec((1usize..=300, hidden_activation()), 0..=2),
        1usize..=300,
        head(),
        optimizer(),
        1usize..=257,
        any::<u64>(),
    )
        .prop_map(
            |(inputs, hidden, outputs, (output, loss), optimizer, batch, seed)| Case {
                inputs,
                hidden,
                outputs,
                output,
                loss,
                optimizer,
                batch,
                seed,
            },
        )
}

fn data(case: &Case) -> (Vec<f32>, Vec<f32>) {
    let x = uniform(case.seed, case.batch * case.inputs, -1.0, 1.0);
    let y = match case.loss {
        Loss::Ce => uniform(case.seed + 1, case.batch, 0.0, case.outputs as f32)
            .iter()
            .map(|v| v.floor())
            .collect(),
        Loss::Bce => uniform(case.seed + 1, case.batch * case.outputs, 0.0, 1.0)
            .iter()
            .map(|v| v.round())
            .collect(),
        _ => uniform(case.seed + 1, case.batch * case.outputs, -1.0, 1.0),
    };
    (x, y)
}

/// Gradients can be tiny next to their largest element: compare each with a floor at 1e-4 of the largest.
fn gradient_tolerance(reference: &[LayerParams]) -> Tolerance {
    let largest = reference
        .iter()
        .flat_map(|l| l.weights.iter().chain(&l.bias))
        .fold(0.0f32, |m, g| m.max(g.abs()));
    Tolerance {
        abs: 1e-4 * largest + 1e-7,
        rel: 1e-3,
    }
}

fn compare_layers(what: &str, gpu: &[LayerParams], cpu: &[LayerParams], tol: Tolerance) {
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert_close(
            &format!("{what} layer {i} weights"),
            &g.weights,
            &c.weights,
            tol,
        );
        assert_close(&format!("{what} layer {i} bias"), &g.bias, &c.bias, tol);
    }
}

/// Runs one case on both backends; hands the GPU backend back for the next case.
fn check(case: &Case, gpu: Box<dyn Backend>) -> Box<dyn Backend> {
    let mut builder = Network::builder(case.inputs);
    for &(width, activation) in &case.hidden {
        builder = builder.dense(width, activation);
    }
    let outputs = if case.loss == Loss::Ce {
        case.outputs.max(2)
    } else {
        case.outputs
    };
    let network = builder
        .dense(outputs, case.output)
        .build(case.loss)
        .expect("valid network");
    let case = Case {
        outputs,
        ..case.clone()
    };
    let (x, y) = data(&case);
    let mut on_gpu = Model::with_backend(network.clone(), gpu, case.seed).expect("gpu model");
    let mut on_cpu =
        Model::with_backend(network, Box::new(CpuBackend::new()), case.seed).expect("cpu model");

    let what = |part: &str| format!("{case:?}: {part}");
    assert_close(
        &what("forward"),
        &on_gpu.predict(&x).expect("gpu"),
        &on_cpu.predict(&x).expect("cpu"),
        FORWARD,
    );
    let (gpu_loss, gpu_grads) = on_gpu.gradients(&x, &y).expect("gpu gradients");
    let (cpu_loss, cpu_grads) = on_cpu.gradients(&x, &y).expect("cpu gradients");
    assert_close(&what("loss"), &[gpu_loss], &[cpu_loss], FORWARD);
    compare_layers(
        &what("gradient"),
        &gpu_grads,
        &cpu_grads,
        gradient_tolerance(&cpu_grads),
    );

    // Small steps, so three of them stay comparable; the summed loss gets a smaller rate.
    let learning_rate = match (case.optimizer, case.loss) {
        (Optimizer::Adam { .. }, _) => 1e-3,
        (_, Loss::Sse) => 1e-4,
        _ => 1e-2,
    };
    // The summed loss's gradients are batch·outputs times larger, and so is their rounding noise: scale ε.
    let optimizer = match (case.optimizer, case.loss) {
        (
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            },
            Loss::Sse,
        ) => Optimizer::Adam {
            beta1,
            beta2,
            epsilon: epsilon * (case.batch * case.outputs) as f32,
        },
        (optimizer, _) => optimizer,
    };
    let config = TrainConfig {
        iterations: 3,
        learning_rate,
        optimizer,
        weight_decay: 1e-3,
        ..TrainConfig::default()
    };
    on_gpu.train(&x, &y, &config).expect("gpu steps");
    on_cpu.train(&x, &y, &config).expect("cpu steps");

    compare_layers(
        &what("parameters after 3 steps"),
        &on_gpu.parameters().expect("gpu"),
        &on_cpu.parameters().expect("cpu"),
        PARAMETERS,
    );
    on_gpu.into_backend()
}

#[test]
fn random_networks_agree_between_cpu_and_gpu() {
    let Some(gpu) = gpu_backend() else { return };
    let backend: RefCell<Option<Box<dyn Backend>>> = RefCell::new(Some(Box::new(gpu)));
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&case(), |case| {
        let gpu = backend
            .borrow_mut()
            .take()
            .expect("backend returned by the last case");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&case, gpu)));
        match outcome {
            Ok(gpu) => {
                *backend.borrow_mut() = Some(gpu);
                Ok(())
            }
            Err(panic) => {
                // The backend went down with the failing case; open a fresh one for the shrinking runs.
                *backend.borrow_mut() = gpu_backend().map(|g| Box::new(g) as Box<dyn Backend>);
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "panic".into());
                Err(TestCaseError::fail(message))
            }
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
