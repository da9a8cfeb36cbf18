//! Parity of the layout op (`src/ops/layout.rs`, `shaders/layout.wgsl`): a copy, so exact.

use crate::common::{parity, uniform, Tolerance};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::TransposeBatched;

const EXACT: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };

#[test]
fn transpose_batched() {
    let Some(mut gpu) = gpu_backend() else { return };
    for (batch, rows, cols) in [(1, 1, 1), (2, 3, 5), (64, 784, 16), (3, 1, 7), (5, 9, 1)] {
        let len = batch * rows * cols;
        let input = uniform(9, len, -1.0, 1.0);
        let out = parity(
            &mut gpu,
            &format!("transpose_batched {batch}x{rows}x{cols}"),
            &[input.clone(), vec![f32::NAN; len]],
            EXACT,
            &|b| {
                Op::TransposeBatched(TransposeBatched {
                    input: b[0].region(len),
                    output: b[1].region(len),
                    batch,
                    rows,
                    cols,
                })
            },
        );
        let (b, r, c) = (batch - 1, rows - 1, 0);
        assert_eq!(
            out[1][(b * cols + c) * rows + r],
            input[(b * rows + r) * cols + c]
        );
    }
}
