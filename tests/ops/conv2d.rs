//! The direct convolution ops (`src/ops/conv2d.rs`, `shaders/conv2d.wgsl`): the CPU forward against an f64
//! convolution, both backward ops against the forward as its adjoints, and each op between the backends
//! over the edge geometries of `conv.rs` and random ones (proptest).

use crate::common::{assert_close, parity, run_op, uniform, MATMUL};
use crate::conv::{direct_conv, geometry, GEOMETRIES};
use crate::gpu_backend;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use wgtrain::backend::{BufferId, Op};
use wgtrain::ops::{Conv2dBackwardInput, Conv2dBackwardWeights, Conv2dForward, Geometry};
use wgtrain::{Activation, CpuBackend, WgpuBackend};

/// Output channels tried with every geometry: one, and a count that is no multiple of anything.
const OUTS: [usize; 2] = [1, 3];

fn output_len(g: &Geometry, outs: usize) -> usize {
    g.batch * outs * g.out_positions()
}

fn forward(g: Geometry, outs: usize, activation: Activation) -> impl Fn(&[BufferId]) -> Op {
    move |b| {
        Op::Conv2dForward(Conv2dForward {
            input: b[0].region(g.input_len()),
            weights: b[1].region(g.patch() * outs),
            bias: b[2].region(outs),
            output: b[3].region(output_len(&g, outs)),
            geometry: g,
            out_channels: outs,
            activation,
        })
    }
}

fn backward_input(g: Geometry, outs: usize) -> impl Fn(&[BufferId]) -> Op {
    move |b| {
        Op::Conv2dBackwardInput(Conv2dBackwardInput {
            grad_output: b[0].region(output_len(&g, outs)),
            weights: b[1].region(g.patch() * outs),
            grad_input: b[2].region(g.input_len()),
            geometry: g,
            out_channels: outs,
        })
    }
}

fn backward_weights(g: Geometry, outs: usize) -> impl Fn(&[BufferId]) -> Op {
    move |b| {
        Op::Conv2dBackwardWeights(Conv2dBackwardWeights {
            input: b[0].region(g.input_len()),
            grad_output: b[1].region(output_len(&g, outs)),
            grad_weights: b[2].region(g.patch() * outs),
            geometry: g,
            out_channels: outs,
        })
    }
}

/// Inputs of every op for one case: an image batch, weights `[patch, outs]`, a bias, an output gradient.
fn operands(g: &Geometry, outs: usize, seed: u64) -> [Vec<f32>; 4] {
    [
        uniform(seed, g.input_len(), -1.0, 1.0),
        uniform(seed + 1, g.patch() * outs, -1.0, 1.0),
        uniform(seed + 2, outs, -0.5, 0.5),
        uniform(seed + 3, output_len(g, outs), -1.0, 1.0),
    ]
}

fn check_parity(gpu: &mut WgpuBackend, g: Geometry, outs: usize, seed: u64) {
    let [x, w, bias, dy] = operands(&g, outs, seed);
    for activation in [Activation::Linear, Activation::Relu, Activation::Tanh] {
        let buffers = [
            x.clone(),
            w.clone(),
            bias.clone(),
            vec![f32::NAN; output_len(&g, outs)],
        ];
        let what = format!("conv2d_forward {g:?} outs {outs} {activation:?}");
        parity(gpu, &what, &buffers, MATMUL, &forward(g, outs, activation));
    }
    let buffers = [dy.clone(), w, vec![f32::NAN; g.input_len()]];
    let what = format!("conv2d_backward_input {g:?} outs {outs}");
    parity(gpu, &what, &buffers, MATMUL, &backward_input(g, outs));
    let buffers = [x, dy, vec![f32::NAN; g.patch() * outs]];
    let what = format!("conv2d_backward_weights {g:?} outs {outs}");
    // The weight gradient sums batch × positions products.
    parity(gpu, &what, &buffers, MATMUL, &backward_weights(g, outs));
}

#[test]
fn conv2d_forward() {
    for (case, shape) in GEOMETRIES.into_iter().enumerate() {
        let g = geometry(shape);
        for outs in OUTS {
            let [x, w, bias, _] = operands(&g, outs, 10 * case as u64);
            let out = run_op(
                &mut CpuBackend::new(),
                &[
                    x.clone(),
                    w.clone(),
                    bias.clone(),
                    vec![f32::NAN; output_len(&g, outs)],
                ],
                &forward(g, outs, Activation::Linear),
            );
            // The f64 reference takes PyTorch's [out, patch]; the op stores [patch, out].
            let torch: Vec<f32> = (0..outs * g.patch())
                .map(|i| w[(i % g.patch()) * outs + i / g.patch()])
                .collect();
            let positions = g.out_positions();
            let expected: Vec<f32> = direct_conv(&x, &torch, &g, outs)
                .iter()
                .enumerate()
                .map(|(i, v)| v + bias[(i / positions) % outs])
                .collect();
            assert_close(
                &format!("conv2d_forward {g:?} outs {outs}"),
                &out[3],
                &expected,
                MATMUL,
            );
        }
    }
    let Some(mut gpu) = gpu_backend() else { return };
    for (case, shape) in GEOMETRIES.into_iter().enumerate() {
        for outs in OUTS {
            check_parity(&mut gpu, geometry(shape), outs, 100 + case as u64);
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

/// ⟨conv(x), dy⟩ = ⟨x, conv2d_backward_input(dy)⟩ with no bias and no activation: the op sends each
/// output's gradient to every input its window read, through the weight that read it.
#[test]
fn conv2d_backward_input() {
    for (case, shape) in GEOMETRIES.into_iter().enumerate() {
        let g = geometry(shape);
        for outs in OUTS {
            let [x, w, _, dy] = operands(&g, outs, 20 * case as u64);
            let zero_bias = vec![0.0; outs];
            let y = run_op(
                &mut CpuBackend::new(),
                &[
                    x.clone(),
                    w.clone(),
                    zero_bias,
                    vec![0.0; output_len(&g, outs)],
                ],
                &forward(g, outs, Activation::Linear),
            );
            let dx = run_op(
                &mut CpuBackend::new(),
                &[dy.clone(), w, vec![f32::NAN; g.input_len()]],
                &backward_input(g, outs),
            );
            let (lhs, rhs) = (dot(&y[3], &dy), dot(&x, &dx[2]));
            assert!(
                (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
                "{g:?} outs {outs}: {lhs} vs {rhs}"
            );
        }
    }
}

/// ⟨conv_w(x), dy⟩ = ⟨w, conv2d_backward_weights(x, dy)⟩: the convolution is linear in its weights.
#[test]
fn conv2d_backward_weights() {
    for (case, shape) in GEOMETRIES.into_iter().enumerate() {
        let g = geometry(shape);
        for outs in OUTS {
            let [x, w, _, dy] = operands(&g, outs, 30 * case as u64);
            let y = run_op(
                &mut CpuBackend::new(),
                &[
                    x.clone(),
                    w.clone(),
                    vec![0.0; outs],
                    vec![0.0; output_len(&g, outs)],
                ],
                &forward(g, outs, Activation::Linear),
            );
            let dw = run_op(
                &mut CpuBackend::new(),
                &[x, dy.clone(), vec![f32::NAN; g.patch() * outs]],
                &backward_weights(g, outs),
            );
            let (lhs, rhs) = (dot(&y[3], &dy), dot(&w, &dw[2]));
            assert!(
                (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
                "{g:?} outs {outs}: {lhs} vs {rhs}"
            );
        }
    }
}

/// A batch of 37 samples: the weight gradient's partial sums over 16 samples each (a third one short) add
/// up to the whole, and the ops split over threads.
#[test]
fn conv2d_backward_weights_over_partials() {
    let g = geometry((37, 3, 9, 9, 3, 1, 1));
    let outs = 4;
    let [x, _, _, dy] = operands(&g, outs, 5);
    let dw = run_op(
        &mut CpuBackend::new(),
        &[x.clone(), dy.clone(), vec![f32::NAN; g.patch() * outs]],
        &backward_weights(g, outs),
    );
    // Sample by sample through the same op, summed in f64.
    let mut expected = vec![0.0f64; g.patch() * outs];
    let one = Geometry { batch: 1, ..g };
    let (image, per_sample) = (one.input_len(), output_len(&one, outs));
    for n in 0..g.batch {
        let part = run_op(
            &mut CpuBackend::new(),
            &[
                x[n * image..][..image].to_vec(),
                dy[n * per_sample..][..per_sample].to_vec(),
                vec![f32::NAN; g.patch() * outs],
            ],
            &backward_weights(one, outs),
        );
        for (e, &v) in expected.iter_mut().zip(&part[2]) {
            *e += f64::from(v);
        }
    }
    let expected: Vec<f32> = expected.into_iter().map(|v| v as f32).collect();
    assert_close("weight gradient over 37 samples", &dw[2], &expected, MATMUL);
    if let Some(mut gpu) = gpu_backend() {
        check_parity(&mut gpu, g, outs, 7);
    }
}

/// Regression: llvmpipe ends an invocation after 65535 loop iterations in total, which cut the weight
/// gradient's sum over batch × positions short (100 samples of 28×28: 78400 terms) until it ran in windows.
#[test]
fn conv2d_backward_weights_past_the_loop_limit() {
    let Some(mut gpu) = gpu_backend() else { return };
    let g = geometry((100, 1, 28, 28, 3, 1, 1));
    let outs = 2;
    let [x, _, _, dy] = operands(&g, outs, 11);
    let buffers = [x, dy, vec![f32::NAN; g.patch() * outs]];
    parity(
        &mut gpu,
        "conv2d_backward_weights 100x1x28x28",
        &buffers,
        MATMUL,
        &backward_weights(g, outs),
    );
}

/// Random geometries, 24 cases from a fixed seed: every op agrees between the backends.
#[test]
fn random_conv2d_geometries_agree_between_cpu_and_gpu() {
    let Some(gpu) = gpu_backend() else { return };
    let gpu = std::cell::RefCell::new(gpu);
    let config = Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let shapes = (
        1..4usize,
        1..4usize,
        1..10usize,
        1..10usize,
        1..5usize,
        1..4usize,
        0..3usize,
        1..5usize,
    );
    runner
        .run(&shapes, |(n, c, h, w, k, s, p, outs)| {
            prop_assume!(k <= h + 2 * p && k <= w + 2 * p);
            let g = geometry((n, c, h, w, k, s, p));
            check_parity(&mut gpu.borrow_mut(), g, outs, (n * 7 + c) as u64);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
