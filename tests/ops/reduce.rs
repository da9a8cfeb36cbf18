//! Parity of the reductions over a batch (`src/ops/reduce.rs`, `shaders/reduce.wgsl`).

use crate::common::{parity, uniform, REDUCTION};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::BiasGrad;

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
