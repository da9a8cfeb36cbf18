//! Parity of the activations (`src/ops/activation.rs`, `shaders/activation.wgsl`), and of the fused
//! activation epilogue of `matmul_bias_act` at extreme pre-activations.

use crate::common::{assert_close, parity, uniform, ELEMENTWISE};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::{ActBackward, ActForward, MatmulBiasAct, Softmax, SoftmaxBackward};

/// Every elementwise activation on ±50 and the kink, through the matmul epilogue with a 1x1 identity weight.
#[test]
fn activations_at_extremes() {
    let Some(mut gpu) = gpu_backend() else { return };
    let xs = super::pre_activations();
    let m = xs.len();
    for activation in super::elementwise_activations() {
        let out = parity(
            &mut gpu,
            &format!("{activation} on ±50"),
            &[xs.clone(), vec![1.0], vec![0.0], vec![0.0; m]],
            ELEMENTWISE,
            &|b| {
                Op::MatmulBiasAct(MatmulBiasAct {
                    input: b[0].region(m),
                    weights: b[1].region(1),
                    bias: b[2].region(1),
                    output: b[3].region(m),
                    m,
                    k: 1,
                    n: 1,
                    activation,
                    workgroup: None,
                })
            },
        );
        assert!(
            out[3].iter().all(|y| y.is_finite()),
            "{activation} produced a non-finite value: {:?}",
            out[3]
        );
    }
}

#[test]
fn act_forward() {
    let Some(mut gpu) = gpu_backend() else { return };
    let xs = super::pre_activations();
    for activation in super::elementwise_activations() {
        let (rows, cols) = (xs.len() / 4, 4);
        let n = rows * cols;
        let out = parity(
            &mut gpu,
            &format!("act_forward {activation}"),
            &[xs[..n].to_vec()],
            ELEMENTWISE,
            &|b| {
                Op::ActForward(ActForward {
                    values: b[0].region(n),
                    rows,
                    cols,
                    activation,
                })
            },
        );
        let expected: Vec<f32> = xs[..n].iter().map(|&x| activation.apply(x)).collect();
        assert_close(
            &format!("act_forward {activation} (CPU vs formula)"),
            &out[0],
            &expected,
            ELEMENTWISE,
        );
    }
}

#[test]
fn act_backward() {
    let Some(mut gpu) = gpu_backend() else { return };
    let xs = super::pre_activations();
    for activation in super::elementwise_activations() {
        let output: Vec<f32> = xs.iter().map(|&x| activation.apply(x)).collect();
        let (rows, cols) = (xs.len() / 4, 4);
        let n = rows * cols;
        let grad = uniform(5, n, -2.0, 2.0);
        let out = parity(
            &mut gpu,
            &format!("act_backward {activation}"),
            &[output[..n].to_vec(), grad.clone()],
            ELEMENTWISE,
            &|b| {
                Op::ActBackward(ActBackward {
                    output: b[0].region(n),
                    grad: b[1].region(n),
                    rows,
                    cols,
                    activation,
                })
            },
        );
        let expected: Vec<f32> = grad
            .iter()
            .zip(&output)
            .map(|(g, &y)| g * activation.derivative_from_output(y))
            .collect();
        assert_close(
            &format!("act_backward {activation} (CPU vs formula)"),
            &out[1],
            &expected,
            ELEMENTWISE,
        );
    }
}

#[test]
fn softmax() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &(rows, cols) in &[(1, 1), (3, 7), (65, 10), (257, 33)] {
        let mut values = uniform(rows as u64, rows * cols, -5.0, 5.0);
        values[0] = 50.0;
        values[rows * cols - 1] = -50.0;
        let out = parity(
            &mut gpu,
            &format!("softmax {rows}x{cols}"),
            &[values],
            ELEMENTWISE,
            &|b| {
                Op::Softmax(Softmax {
                    values: b[0].region(rows * cols),
                    rows,
                    cols,
                })
            },
        );
        for row in out[0].chunks(cols) {
            assert!(
                (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "softmax row does not sum to 1: {row:?}"
            );
        }
    }
}

#[test]
fn softmax_backward() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &(rows, cols) in &[(1, 1), (3, 7), (65, 10), (257, 33)] {
        let mut output = uniform(rows as u64 + 7, rows * cols, -3.0, 3.0);
        wgtrain::activation::softmax_rows(&mut output, cols);
        let grad = uniform(rows as u64 + 8, rows * cols, -1.0, 1.0);
        parity(
            &mut gpu,
            &format!("softmax_backward {rows}x{cols}"),
            &[output, grad],
            ELEMENTWISE,
            &|b| {
                Op::SoftmaxBackward(SoftmaxBackward {
                    output: b[0].region(rows * cols),
                    grad: b[1].region(rows * cols),
                    rows,
                    cols,
                })
            },
        );
    }
}
