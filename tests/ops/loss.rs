//! Parity of the loss ops (`src/ops/loss.rs`, `shaders/loss.wgsl`) for every loss.

use crate::common::{assert_close, parity, uniform, ELEMENTWISE, REDUCTION};
use crate::gpu_backend;
use wgtrain::backend::{BufferId, Op};
use wgtrain::ops::{LossGrad, LossSum};
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
    Op::LossGrad(LossGrad {
        prediction: b[0].region(rows * cols),
        target: b[1].region(rows * loss.target_width(cols)),
        grad: b[2].region(rows * cols),
        row_loss: b[3].region(rows),
        row_hits: b[4].region(rows),
        rows,
        cols,
        loss,
    })
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
            &|b| {
                Op::LossSum(LossSum {
                    row_loss: b[0].region(rows),
                    row_hits: b[1].region(rows),
                    stats: b[2].region(5),
                    rows,
                    scale,
                })
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
            &|b| {
                Op::LossSum(LossSum {
                    row_loss: b[0].region(2),
                    row_hits: b[1].region(2),
                    stats: b[2].region(5),
                    rows: 2,
                    scale: 0.5,
                })
            },
        );
        assert!(!out[2][0].is_finite());
        assert_eq!(out[2][3], 7.0);
        assert_eq!(out[2][4], if first_bad == 0.0 { 7.0 } else { first_bad });
    }
}

/// Regression: llvmpipe ends a shader invocation after 65535 loop iterations, which cut the loss of wide
/// rows short. It now runs in windows.
#[test]
fn llvmpipe_loop_limit_wide_loss_rows() {
    let Some(mut gpu) = gpu_backend() else { return };
    let tol = crate::common::Tolerance {
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
}
