//! Parity of the loss ops (`src/ops/loss.rs`, `shaders/loss.wgsl`) for every loss.

use crate::common::{assert_close, parity, uniform, ELEMENTWISE, REDUCTION};
use crate::gpu_backend;
use wgtrain::backend::{BufferId, Op};
use wgtrain::ops::loss::{EPOCH_WEIGHT_SUM, STATS_LEN, WEIGHT_SUM};
use wgtrain::ops::{ClassWeightSum, CrossEntropyGrad, LossGrad, LossSum};
use wgtrain::Loss;

/// Predictions and targets valid for each loss: probabilities for sse/mse targets, logits including ±50 for
/// bce and ce, class indices for ce.
fn loss_data(loss: Loss, rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut prediction = match loss {
        Loss::Sse | Loss::Mse => uniform(seed, rows * cols, 0.0, 1.0),
        Loss::Bce | Loss::Ce => uniform(seed, rows * cols, -8.0, 8.0),
        other => panic!("no test predictions for {other:?}: add them here"),
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
        other => panic!("no test targets for {other:?}: add them here"),
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
        for weighted in [false, true] {
            // stats start with running sums from earlier steps, which must be added to; a weighted step
            // divides by the class-weight sum left at WEIGHT_SUM.
            let stats = vec![9.0, 1.5, 2.0, 3.0, 0.0, 4.0, 0.0];
            let out = parity(
                &mut gpu,
                &format!("loss_sum {rows} weighted {weighted}"),
                &[row_loss.clone(), row_hits.clone(), stats],
                REDUCTION,
                &|b| {
                    Op::LossSum(LossSum {
                        weighted,
                        row_loss: b[0].region(rows),
                        row_hits: b[1].region(rows),
                        stats: b[2].region(STATS_LEN),
                        rows,
                        scale,
                    })
                },
            );
            let sum = row_loss.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
            let hits: f32 = row_hits.iter().sum();
            let step = if weighted { sum / 4.0 } else { sum * scale };
            let expected = [step, 1.5 + sum, 2.0 + hits, 4.0, 0.0, 4.0, 0.0];
            assert_close("loss_sum (CPU vs f64)", &out[2], &expected, REDUCTION);
        }
    }
}

/// The first step whose loss is NaN or infinite is recorded once, and later ones do not move it.
#[test]
fn loss_sum_records_the_first_non_finite_step() {
    let Some(mut gpu) = gpu_backend() else { return };
    for (bad, first_bad) in [(f32::NAN, 0.0), (f32::INFINITY, 0.0), (f32::NAN, 2.0)] {
        let stats = vec![0.0, 0.0, 0.0, 6.0, first_bad, 0.0, 0.0];
        let out = parity(
            &mut gpu,
            &format!("loss_sum with {bad}"),
            &[vec![1.0, bad], vec![0.0; 2], stats],
            REDUCTION,
            &|b| {
                Op::LossSum(LossSum {
                    weighted: false,
                    row_loss: b[0].region(2),
                    row_hits: b[1].region(2),
                    stats: b[2].region(STATS_LEN),
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

#[test]
fn class_weight_sum() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &(rows, classes) in &[(1, 2), (7, 3), (300, 10), (1000, 33)] {
        let target: Vec<f32> = uniform(rows as u64, rows, 0.0, classes as f32)
            .iter()
            .map(|v| v.floor())
            .collect();
        let weights = uniform(7, classes, 0.0, 3.0);
        let mut stats = vec![0.0; STATS_LEN];
        stats[EPOCH_WEIGHT_SUM] = 1.5;
        let out = parity(
            &mut gpu,
            &format!("class_weight_sum {rows} rows"),
            &[target.clone(), weights.clone(), stats],
            REDUCTION,
            &|b| {
                Op::ClassWeightSum(ClassWeightSum {
                    target: b[0].region(rows),
                    class_weights: b[1].region(classes),
                    stats: b[2].region(STATS_LEN),
                    rows,
                    classes,
                })
            },
        );
        let expected: f64 = target.iter().map(|&t| f64::from(weights[t as usize])).sum();
        assert_close(
            "weight sum",
            &[out[2][WEIGHT_SUM]],
            &[expected as f32],
            REDUCTION,
        );
        assert_close(
            "epoch weight sum",
            &[out[2][EPOCH_WEIGHT_SUM]],
            &[(expected + 1.5) as f32],
            REDUCTION,
        );
    }
}

/// The `cross_entropy_grad` op over buffers laid out as prediction, target, class weights, stats, grad,
/// row_loss, row_hits.
fn cross_entropy_op(b: &[BufferId], rows: usize, cols: usize, label_smoothing: f32) -> Op {
    Op::CrossEntropyGrad(CrossEntropyGrad {
        prediction: b[0].region(rows * cols),
        target: b[1].region(rows),
        class_weights: b[2].region(cols),
        stats: b[3].region(STATS_LEN),
        grad: b[4].region(rows * cols),
        row_loss: b[5].region(rows),
        row_hits: b[6].region(rows),
        rows,
        cols,
        label_smoothing,
    })
}

/// torch's documented CrossEntropyLoss with `weight` and `label_smoothing`, in f64: the target
/// distribution `q_c = (1 − ε) [c = y] + ε / C`, `ℓ_i = −Σ_c w_c q_c log p_c`, mean `Σ_i ℓ_i / Σ_i w_{y_i}`.
fn torch_cross_entropy(z: &[f64], target: &[f32], weights: &[f32], smoothing: f64) -> f64 {
    let cols = weights.len();
    let (mut total, mut divisor) = (0.0, 0.0);
    for (row, &y) in z.chunks(cols).zip(target) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        for (c, &v) in row.iter().enumerate() {
            let q =
                (1.0 - smoothing) * f64::from(u8::from(c == y as usize)) + smoothing / cols as f64;
            total -= f64::from(weights[c]) * q * (v - lse);
        }
        divisor += f64::from(weights[y as usize]);
    }
    total / divisor
}

/// The op's row losses and gradients against torch's formula: the loss summed and divided by the weight
/// sum, the gradient against central finite differences of that f64 loss; and CPU against GPU.
#[test]
fn cross_entropy_grad() {
    let gpu = gpu_backend();
    let mut gpu = gpu;
    for &(rows, cols, smoothing) in &[
        (1, 2, 0.0),
        (3, 7, 0.1),
        (65, 10, 0.3),
        (257, 33, 0.05),
        (5, 3, 0.0),
    ] {
        let (prediction, target) = loss_data(Loss::Ce, rows, cols, rows as u64 + 40);
        let weights = uniform(cols as u64, cols, 0.1, 3.0);
        let divisor: f64 = target.iter().map(|&t| f64::from(weights[t as usize])).sum();
        let mut stats = vec![0.0; STATS_LEN];
        stats[WEIGHT_SUM] = divisor as f32;
        let buffers = [
            prediction.clone(),
            target.clone(),
            weights.clone(),
            stats,
            vec![0.0; rows * cols],
            vec![0.0; rows],
            vec![0.0; rows],
        ];
        let make = |b: &[BufferId]| cross_entropy_op(b, rows, cols, smoothing as f32);
        let what = format!("cross_entropy_grad {rows}x{cols} ε {smoothing}");
        let out = match gpu.as_mut() {
            Some(gpu) => parity(gpu, &what, &buffers, ELEMENTWISE, &make),
            None => crate::common::run_op(&mut wgtrain::CpuBackend::new(), &buffers, &make),
        };
        let z: Vec<f64> = prediction.iter().map(|&v| f64::from(v)).collect();
        let loss = torch_cross_entropy(&z, &target, &weights, smoothing);
        let summed: f64 = out[5].iter().map(|&v| f64::from(v)).sum::<f64>() / divisor;
        assert!(
            (summed - loss).abs() <= 1e-5 * loss.abs().max(1.0),
            "{what}: loss {summed} against torch's {loss}"
        );
        // Finite differences on a few logits (not the ±50 ones, whose softmax is saturated).
        for i in (2..rows * cols).step_by((rows * cols / 7).max(1)) {
            let h = 1e-5;
            let (mut up, mut down) = (z.clone(), z.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (torch_cross_entropy(&up, &target, &weights, smoothing)
                - torch_cross_entropy(&down, &target, &weights, smoothing))
                / (2.0 * h);
            let analytic = f64::from(out[4][i]);
            assert!(
                (numeric - analytic).abs() <= 1e-6 + 1e-3 * numeric.abs(),
                "{what}: ∂L/∂z[{i}] {analytic} against {numeric}"
            );
        }
    }
}

/// Weights of one and no smoothing give plain cross-entropy: the same gradients as `loss_grad`.
#[test]
fn cross_entropy_grad_without_weights_is_loss_grad() {
    let (rows, cols) = (9, 4);
    let (prediction, target) = loss_data(Loss::Ce, rows, cols, 3);
    let mut stats = vec![0.0; STATS_LEN];
    stats[WEIGHT_SUM] = rows as f32;
    let mut cpu = wgtrain::CpuBackend::new();
    let weighted = crate::common::run_op(
        &mut cpu,
        &[
            prediction.clone(),
            target.clone(),
            vec![1.0; cols],
            stats,
            vec![0.0; rows * cols],
            vec![0.0; rows],
            vec![0.0; rows],
        ],
        &|b| cross_entropy_op(b, rows, cols, 0.0),
    );
    let plain = crate::common::run_op(
        &mut cpu,
        &[
            prediction,
            target,
            vec![0.0; rows * cols],
            vec![0.0; rows],
            vec![0.0; rows],
        ],
        &|b| loss_grad_op(b, rows, cols, Loss::Ce),
    );
    assert_close("gradients", &weighted[4], &plain[2], ELEMENTWISE);
    assert_close("row losses", &weighted[5], &plain[3], ELEMENTWISE);
    assert_eq!(weighted[6], plain[4], "hits");
}
