//! Per-op parity for the loss, reduction and optimizer ops: CPU reference and wgpu backend from the same
//! inputs; each test is named after its op and WGSL entry point. The optimizer rules are also checked
//! against PyTorch's formulas written out by hand.

mod common;

use common::{assert_close, gpu_backend, parity, uniform, ELEMENTWISE, REDUCTION};
use wgtrain::backend::{BufferId, Op};
use wgtrain::optim::hyper;
use wgtrain::Loss;

/// Predictions and targets valid for each loss: probabilities for sse/mse targets, logits including ±50 for
/// bce and ce, class indices for ce.
fn loss_data(loss: Loss, rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut prediction = match loss {
        Loss::Sse | Loss::Mse => uniform(seed, rows * cols, 0.0, 1.0),
        Loss::Bce | Loss::Ce => uniform(seed, rows * cols, -8.0, 8.0),
    };
    if loss.is_fused() {
        prediction[0] = 50.0;
        if prediction.len() > 1 {
            prediction[1] = -50.0;
        }
    }
    let target = match loss {
        Loss::Sse | Loss::Mse => uniform(seed + 1, rows * cols, 0.0, 1.0),
        Loss::Bce => uniform(seed + 1, rows * cols, 0.0, 1.0)
            .iter()
            .map(|v| v.round())
            .collect(),
        Loss::Ce => uniform(seed + 1, rows, 0.0, cols as f32)
            .iter()
            .map(|v| v.floor())
            .collect(),
    };
    (prediction, target)
}

/// The `loss_grad` op over buffers laid out as prediction, target, grad, row_loss, row_hits.
fn loss_grad_op(b: &[BufferId], rows: usize, cols: usize, loss: Loss) -> Op {
    Op::LossGrad {
        prediction: b[0].region(rows * cols),
        target: b[1].region(rows * loss.target_width(cols)),
        grad: b[2].region(rows * cols),
        row_loss: b[3].region(rows),
        row_hits: b[4].region(rows),
        rows,
        cols,
        loss,
    }
}

#[test]
fn loss_grad() {
    let Some(mut gpu) = gpu_backend() else { return };
    for loss in Loss::ALL {
        for &(rows, cols) in &[(1, 1), (4, 1), (3, 7), (65, 10), (257, 33)] {
            let (prediction, target) = loss_data(loss, rows, cols, rows as u64);
            let buffers = [
                prediction,
                target.clone(),
                vec![0.0; rows * cols],
                vec![0.0; rows],
                vec![0.0; rows],
            ];
            let out = parity(
                &mut gpu,
                &format!("loss_grad {loss} {rows}x{cols}"),
                &buffers,
                ELEMENTWISE,
                &|b| loss_grad_op(b, rows, cols, loss),
            );
            assert!(
                out[3].iter().all(|v| v.is_finite() && *v >= 0.0),
                "{loss} row losses: {:?}",
                out[3]
            );
            let most = if loss == Loss::Bce { cols as f32 } else { 1.0 };
            assert!(
                out[4]
                    .iter()
                    .all(|&h| (0.0..=most).contains(&h) && h.fract() == 0.0),
                "{loss} hits: {:?}",
                out[4]
            );
        }
    }
}

/// Hits follow the documented rules on hand-made rows (ties resolve to the first maximum).
#[test]
fn loss_grad_hits_rules() {
    let Some(mut gpu) = gpu_backend() else { return };
    // (loss, cols, prediction, target, expected hits per row)
    type Case = (Loss, usize, Vec<f32>, Vec<f32>, Vec<f32>);
    let cases: [Case; 4] = [
        (
            Loss::Ce,
            3,
            vec![0.1, 2.0, 2.0, 5.0, -1.0, 0.0],
            vec![1.0, 2.0],
            vec![1.0, 0.0],
        ),
        (
            Loss::Bce,
            2,
            vec![0.3, -0.2, -4.0, 0.0],
            vec![1.0, 1.0, 0.0, 1.0],
            vec![1.0, 1.0],
        ),
        (Loss::Mse, 1, vec![0.7, 0.2], vec![1.0, 1.0], vec![1.0, 0.0]),
        (
            Loss::Sse,
            2,
            vec![0.4, 0.6, 0.9, 0.1],
            vec![0.0, 1.0, 0.0, 1.0],
            vec![1.0, 0.0],
        ),
    ];
    for (loss, cols, prediction, target, expected) in cases {
        let rows = prediction.len() / cols;
        let buffers = [
            prediction,
            target.clone(),
            vec![0.0; rows * cols],
            vec![0.0; rows],
            vec![0.0; rows],
        ];
        let out = parity(
            &mut gpu,
            &format!("hits {loss}"),
            &buffers,
            ELEMENTWISE,
            &|b| loss_grad_op(b, rows, cols, loss),
        );
        assert_eq!(out[4], expected, "{loss} hits");
    }
}

#[test]
fn loss_sum() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &rows in &[1, 3, 255, 256, 257, 1000, 4099] {
        let row_loss = uniform(rows as u64, rows, 0.0, 2.0);
        let row_hits: Vec<f32> = uniform(rows as u64 + 1, rows, 0.0, 2.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        let scale = 1.0 / rows as f32;
        // stats start with running sums from earlier steps, which must be added to.
        let stats = vec![9.0, 1.5, 2.0, 3.0, 0.0];
        let out = parity(
            &mut gpu,
            &format!("loss_sum {rows}"),
            &[row_loss.clone(), row_hits.clone(), stats],
            REDUCTION,
            &|b| Op::LossSum {
                row_loss: b[0].region(rows),
                row_hits: b[1].region(rows),
                stats: b[2].region(5),
                rows,
                scale,
            },
        );
        let sum = row_loss.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
        let hits: f32 = row_hits.iter().sum();
        let expected = [sum * scale, 1.5 + sum, 2.0 + hits, 4.0, 0.0];
        assert_close("loss_sum (CPU vs f64)", &out[2], &expected, REDUCTION);
    }
}

/// The first step whose loss is NaN or infinite is recorded once, and later ones do not move it.
#[test]
fn loss_sum_records_the_first_non_finite_step() {
    let Some(mut gpu) = gpu_backend() else { return };
    for (bad, first_bad) in [(f32::NAN, 0.0), (f32::INFINITY, 0.0), (f32::NAN, 2.0)] {
        let stats = vec![0.0, 0.0, 0.0, 6.0, first_bad];
        let out = parity(
            &mut gpu,
            &format!("loss_sum with {bad}"),
            &[vec![1.0, bad], vec![0.0; 2], stats],
            REDUCTION,
            &|b| Op::LossSum {
                row_loss: b[0].region(2),
                row_hits: b[1].region(2),
                stats: b[2].region(5),
                rows: 2,
                scale: 0.5,
            },
        );
        assert!(!out[2][0].is_finite());
        assert_eq!(out[2][3], 7.0);
        assert_eq!(out[2][4], if first_bad == 0.0 { 7.0 } else { first_bad });
    }
}

#[test]
fn bias_grad() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &(rows, cols) in &[(1, 1), (3, 5), (65, 33), (257, 129), (1000, 7)] {
        let grad_output = uniform(cols as u64, rows * cols, -1.0, 1.0);
        parity(
            &mut gpu,
            &format!("bias_grad {rows}x{cols}"),
            &[grad_output, vec![0.0; cols]],
            REDUCTION,
            &|b| Op::BiasGrad {
                grad_output: b[0].region(rows * cols),
                grad_bias: b[1].region(cols),
                rows,
                cols,
            },
        );
    }
}

/// A hyperparameter buffer as `Model` keeps it, mid-run at `step` (bias corrections already advanced).
fn hyper(lr: f32, momentum: f32, weight_decay: f32, step: f32) -> Vec<f32> {
    let mut h = vec![0.0; hyper::LEN];
    h[hyper::LEARNING_RATE] = lr;
    h[hyper::MOMENTUM] = momentum;
    h[hyper::BETA1] = 0.9;
    h[hyper::BETA2] = 0.999;
    h[hyper::EPSILON] = 1e-8;
    h[hyper::WEIGHT_DECAY] = weight_decay;
    h[hyper::STEP] = step;
    h[hyper::BIAS_CORRECTION1] = 1.0 - 0.9f32.powf(step);
    h[hyper::BIAS_CORRECTION2] = 1.0 - 0.999f32.powf(step);
    h
}

/// 4_200_000 floats need more than 65535 workgroups of 64: the dispatch is split over two dimensions.
const UPDATE_LENGTHS: [usize; 5] = [1, 63, 65, 1000, 4_200_000];

#[test]
fn sgd_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        for wd in [0.0, 0.01] {
            let params = uniform(len as u64, len, -1.0, 1.0);
            let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
            let out = parity(
                &mut gpu,
                &format!("sgd_update {len} wd {wd}"),
                &[params.clone(), grads.clone(), hyper(0.1, 0.0, wd, 0.0)],
                ELEMENTWISE,
                &|b| Op::SgdUpdate {
                    params: b[0].region(len),
                    grads: b[1].region(len),
                    hyper: b[2].region(hyper::LEN),
                },
            );
            let i = len - 1;
            let expected = params[i] - 0.1 * (grads[i] + wd * params[i]);
            assert_close(
                "sgd_update (CPU vs formula)",
                &out[0][i..],
                &[expected],
                ELEMENTWISE,
            );
        }
    }
}

#[test]
fn momentum_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        let params = uniform(len as u64, len, -1.0, 1.0);
        let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
        let velocity = uniform(len as u64 + 2, len, -0.5, 0.5);
        let buffers = [
            params.clone(),
            grads.clone(),
            velocity.clone(),
            hyper(0.05, 0.9, 0.001, 3.0),
        ];
        let out = parity(
            &mut gpu,
            &format!("momentum_update {len}"),
            &buffers,
            ELEMENTWISE,
            &|b| Op::MomentumUpdate {
                params: b[0].region(len),
                grads: b[1].region(len),
                velocity: b[2].region(len),
                hyper: b[3].region(hyper::LEN),
            },
        );
        let i = len - 1;
        let v = 0.9 * velocity[i] + grads[i] + 0.001 * params[i];
        assert_close(
            "momentum velocity (CPU vs formula)",
            &out[2][i..],
            &[v],
            ELEMENTWISE,
        );
        assert_close(
            "momentum_update (CPU vs formula)",
            &out[0][i..],
            &[params[i] - 0.05 * v],
            ELEMENTWISE,
        );
    }
}

#[test]
fn adam_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        let params = uniform(len as u64, len, -1.0, 1.0);
        let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
        let m = uniform(len as u64 + 2, len, -0.1, 0.1);
        let v = uniform(len as u64 + 3, len, 0.0, 0.01);
        let h = hyper(0.001, 0.0, 0.01, 5.0);
        let buffers = [
            params.clone(),
            grads.clone(),
            m.clone(),
            v.clone(),
            h.clone(),
        ];
        let out = parity(
            &mut gpu,
            &format!("adam_update {len}"),
            &buffers,
            ELEMENTWISE,
            &|b| Op::AdamUpdate {
                params: b[0].region(len),
                grads: b[1].region(len),
                first_moment: b[2].region(len),
                second_moment: b[3].region(len),
                hyper: b[4].region(hyper::LEN),
            },
        );
        // PyTorch's Adam, in f64.
        let i = len - 1;
        let g = f64::from(grads[i]) + 0.01 * f64::from(params[i]);
        let m1 = 0.9 * f64::from(m[i]) + 0.1 * g;
        let v1 = 0.999 * f64::from(v[i]) + 0.001 * g * g;
        let (bc1, bc2) = (1.0 - 0.9f64.powi(5), 1.0 - 0.999f64.powi(5));
        let w = f64::from(params[i]) - 0.001 / bc1 * m1 / (v1.sqrt() / bc2.sqrt() + 1e-8);
        assert_close(
            "adam m (CPU vs f64)",
            &out[2][i..],
            &[m1 as f32],
            ELEMENTWISE,
        );
        assert_close(
            "adam v (CPU vs f64)",
            &out[3][i..],
            &[v1 as f32],
            ELEMENTWISE,
        );
        assert_close(
            "adam_update (CPU vs f64)",
            &out[0][i..],
            &[w as f32],
            ELEMENTWISE,
        );
    }
}

#[test]
fn advance_step() {
    let Some(mut gpu) = gpu_backend() else { return };
    for step in [0.0, 1.0, 99.0, 9999.0] {
        let out = parity(
            &mut gpu,
            &format!("advance_step from {step}"),
            &[hyper(0.1, 0.0, 0.0, step)],
            ELEMENTWISE,
            &|b| Op::AdvanceStep {
                hyper: b[0].region(hyper::LEN),
            },
        );
        let t = step + 1.0;
        assert_eq!(out[0][hyper::STEP], t);
        assert_close(
            "bias corrections (CPU vs f64)",
            &out[0][hyper::BIAS_CORRECTION1..],
            &[
                (1.0 - 0.9f64.powf(f64::from(t))) as f32,
                (1.0 - 0.999f64.powf(f64::from(t))) as f32,
            ],
            ELEMENTWISE,
        );
        assert_eq!(
            out[0][..hyper::STEP],
            hyper(0.1, 0.0, 0.0, step)[..hyper::STEP],
            "host-owned entries untouched"
        );
    }
}

/// Regression: llvmpipe ends a shader invocation after 65535 loop iterations, which cut the loss of wide
/// rows and the bias gradient of long batches short. Both now run in windows.
#[test]
fn llvmpipe_loop_limit_wide_loss_rows_and_long_bias_sums() {
    let Some(mut gpu) = gpu_backend() else { return };
    let tol = common::Tolerance {
        abs: 1e-6,
        rel: 1e-3,
    };
    for loss in [Loss::Sse, Loss::Mse, Loss::Bce] {
        let (rows, cols) = (2, 100_000);
        let (prediction, target) = loss_data(loss, rows, cols, 77);
        let buffers = [
            prediction,
            target,
            vec![0.0; rows * cols],
            vec![0.0; rows],
            vec![0.0; rows],
        ];
        let out = parity(
            &mut gpu,
            &format!("loss_grad {loss} {cols} wide"),
            &buffers,
            tol,
            &|b| loss_grad_op(b, rows, cols, loss),
        );
        assert!(
            out[2][rows * cols - 1] != 0.0,
            "{loss}: the last gradient was written"
        );
    }
    let (rows, cols) = (70_000, 3);
    let grad_output = uniform(8, rows * cols, -1.0, 1.0);
    parity(
        &mut gpu,
        "bias_grad over 70000 rows",
        &[grad_output, vec![0.0; cols]],
        common::Tolerance {
            abs: 1e-3,
            rel: 1e-4,
        },
        &|b| Op::BiasGrad {
            grad_output: b[0].region(rows * cols),
            grad_bias: b[1].region(cols),
            rows,
            cols,
        },
    );
}
