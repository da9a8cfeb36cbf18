//! The matmul lines: GFLOP/s of each product form on one device.

use crate::backend::{Backend, BufferId, Op};
use crate::ops::{MatmulBiasAct, MatmulNt, MatmulTn};
use crate::{Activation, Result};
use std::time::Instant;

/// The op of one form with C = [m, n] and inner dimension k.
fn matmul_op(form: &str, b: &[BufferId], m: usize, n: usize, k: usize) -> Op {
    match form {
        "nn" => Op::MatmulBiasAct(MatmulBiasAct {
            input: b[0].region(m * k),
            weights: b[1].region(k * n),
            bias: b[3].region(n),
            output: b[2].region(m * n),
            m,
            k,
            n,
            activation: Activation::Linear,
            workgroup: None,
        }),
        "nt" => Op::MatmulNt(MatmulNt {
            grad_output: b[0].region(m * k),
            weights: b[1].region(n * k),
            grad_input: b[2].region(m * n),
            m,
            k,
            n,
            workgroup: None,
        }),
        _ => Op::MatmulTn(MatmulTn {
            input: b[0].region(k * m),
            grad_output: b[1].region(k * n),
            grad_weights: b[2].region(m * n),
            m,
            k,
            n,
            workgroup: None,
        }),
    }
}

/// 2·m·n·k per product over the time of as many products in one submission as fill `seconds` (the read
/// after it waits), and the variant the backend runs it in.
pub(super) fn matmul_gflops(
    backend: &mut dyn Backend,
    form: &str,
    (m, n, k): (usize, usize, usize),
    seconds: f64,
) -> Result<(f64, Option<String>)> {
    let sizes = [m * k, k * n, m * n, n];
    let buffers: Vec<BufferId> = sizes
        .iter()
        .map(|&len| backend.alloc("bench operand", len))
        .collect::<Result<_>>()?;
    for (&buffer, &len) in buffers.iter().zip(&sizes) {
        backend.write(buffer, 0, &vec![0.5; len])?;
    }
    let kernel = backend.prepare(&matmul_op(form, &buffers, m, n, k))?;
    let mut time = |reps: usize| -> Result<f64> {
        let start = Instant::now();
        for _ in 0..reps {
            backend.enqueue(kernel)?;
        }
        backend.submit()?;
        backend.read(buffers[2].region(1))?;
        Ok(start.elapsed().as_secs_f64())
    };
    let once = time(1)?.max(1e-6);
    let reps = ((seconds / once).ceil() as usize).clamp(1, 1000);
    let elapsed = time(reps)?;
    for buffer in buffers {
        backend.free(buffer)?;
    }
    let variant = backend.kernel_variant(kernel);
    Ok((
        2.0 * (m * n * k) as f64 * reps as f64 / elapsed / 1e9,
        variant,
    ))
}
