//! Parity of the reductions over a batch (`src/ops/reduce.rs`, `shaders/reduce.wgsl`).

use crate::common::{assert_close, parity, run_op, uniform, REDUCTION};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::{BiasGrad, ChannelSum};
use wgtrain::CpuBackend;

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
            &|b| {
                Op::BiasGrad(BiasGrad {
                    grad_output: b[0].region(rows * cols),
                    grad_bias: b[1].region(cols),
                    rows,
                    cols,
                })
            },
        );
    }
}

/// Regression: llvmpipe ends a shader invocation after 65535 loop iterations, which cut the bias gradient
/// of long batches short. It now runs in windows.
#[test]
fn llvmpipe_loop_limit_long_bias_sums() {
    let Some(mut gpu) = gpu_backend() else { return };
    let (rows, cols) = (70_000, 3);
    let grad_output = uniform(8, rows * cols, -1.0, 1.0);
    parity(
        &mut gpu,
        "bias_grad over 70000 rows",
        &[grad_output, vec![0.0; cols]],
        crate::common::Tolerance {
            abs: 1e-3,
            rel: 1e-4,
        },
        &|b| {
            Op::BiasGrad(BiasGrad {
                grad_output: b[0].region(rows * cols),
                grad_bias: b[1].region(cols),
                rows,
                cols,
            })
        },
    );
}

/// Channel sums of NCHW gradients: the conv layer's bias gradient on the direct path. Checked against an
/// f64 sum on the CPU, then between the backends.
#[test]
fn channel_sum() {
    // The last case sums 100352 terms a channel: past llvmpipe's loop limit, so it runs in windows.
    let cases = [
        (1, 1, 1, 1),
        (2, 3, 5, 7),
        (64, 32, 14, 14),
        (3, 2, 1, 300),
        (128, 2, 28, 28),
    ];
    let mut gpu = gpu_backend();
    for &(batch, channels, height, width) in &cases {
        let len = batch * channels * height * width;
        let grad_output = uniform(len as u64, len, -1.0, 1.0);
        let make = |b: &[wgtrain::backend::BufferId]| {
            Op::ChannelSum(ChannelSum {
                grad_output: b[0].region(len),
                grad_bias: b[1].region(channels),
                batch,
                channels,
                height,
                width,
            })
        };
        let buffers = [grad_output.clone(), vec![f32::NAN; channels]];
        let cpu = run_op(&mut CpuBackend::new(), &buffers, &make);
        let plane = height * width;
        let expected: Vec<f32> = (0..channels)
            .map(|c| {
                (0..batch)
                    .flat_map(|n| &grad_output[(n * channels + c) * plane..][..plane])
                    .map(|&v| f64::from(v))
                    .sum::<f64>() as f32
            })
            .collect();
        let what = format!("channel_sum {batch}x{channels}x{height}x{width}");
        assert_close(&what, &cpu[1], &expected, REDUCTION);
        if let Some(gpu) = gpu.as_mut() {
            parity(gpu, &what, &buffers, REDUCTION, &make);
        }
    }
}
