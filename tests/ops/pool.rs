//! Parity of the pooling ops (`src/ops/pool.rs`, `shaders/pool.wgsl`) over edge geometries, and the CPU
//! reference on small cases worked out by hand (ties go to the first maximum, as in PyTorch).

use crate::common::{parity, run_op, uniform, ELEMENTWISE};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::{AvgPool, AvgPoolBackward, Geometry, MaxPool, MaxPoolBackward};
use wgtrain::CpuBackend;

/// (batch, channels, height, width, kernel, stride): windows that tile the image, that overlap, that skip
/// pixels, and one that covers the whole image (global average pooling).
const POOLS: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 1, 1, 1, 1, 1),
    (2, 3, 28, 28, 2, 2),
    (1, 2, 7, 5, 3, 1),
    (3, 1, 9, 9, 2, 3),
    (2, 4, 6, 6, 6, 6),
    (64, 16, 14, 14, 2, 2),
    // 2×2 windows in runs of 8 and a remainder, an odd last row and column that no window covers.
    (1, 2, 5, 35, 2, 2),
];

fn geometry(
    (batch, channels, height, width, kernel, stride): (usize, usize, usize, usize, usize, usize),
) -> Geometry {
    Geometry {
        batch,
        channels,
        height,
        width,
        kernel_h: kernel,
        kernel_w: kernel,
        stride,
        padding: 0,
    }
}

/// Inputs with repeated values, so ties between window elements occur.
fn tied_input(g: &Geometry, seed: u64) -> Vec<f32> {
    uniform(seed, g.input_len(), -3.0, 3.0)
        .iter()
        .map(|v| (v * 2.0).round() / 2.0)
        .collect()
}

#[test]
fn max_pool() {
    let Some(mut gpu) = gpu_backend() else { return };
    for shape in POOLS {
        let g = geometry(shape);
        parity(
            &mut gpu,
            &format!("max_pool {g:?}"),
            &[tied_input(&g, 1), vec![f32::NAN; g.output_len()]],
            ELEMENTWISE,
            &|b| {
                Op::MaxPool(MaxPool {
                    input: b[0].region(g.input_len()),
                    output: b[1].region(g.output_len()),
                    geometry: g,
                })
            },
        );
    }
}

#[test]
fn avg_pool() {
    let Some(mut gpu) = gpu_backend() else { return };
    for shape in POOLS {
        let g = geometry(shape);
        parity(
            &mut gpu,
            &format!("avg_pool {g:?}"),
            &[
                uniform(2, g.input_len(), -3.0, 3.0),
                vec![f32::NAN; g.output_len()],
            ],
            ELEMENTWISE,
            &|b| {
                Op::AvgPool(AvgPool {
                    input: b[0].region(g.input_len()),
                    output: b[1].region(g.output_len()),
                    geometry: g,
                })
            },
        );
    }
}

#[test]
fn max_pool_backward() {
    let Some(mut gpu) = gpu_backend() else { return };
    for shape in POOLS {
        let g = geometry(shape);
        parity(
            &mut gpu,
            &format!("max_pool_backward {g:?}"),
            &[
                tied_input(&g, 3),
                uniform(4, g.output_len(), -1.0, 1.0),
                vec![f32::NAN; g.input_len()],
            ],
            ELEMENTWISE,
            &|b| {
                Op::MaxPoolBackward(MaxPoolBackward {
                    input: b[0].region(g.input_len()),
                    grad_output: b[1].region(g.output_len()),
                    grad_input: b[2].region(g.input_len()),
                    geometry: g,
                })
            },
        );
    }
}

#[test]
fn avg_pool_backward() {
    let Some(mut gpu) = gpu_backend() else { return };
    for shape in POOLS {
        let g = geometry(shape);
        parity(
            &mut gpu,
            &format!("avg_pool_backward {g:?}"),
            &[
                uniform(5, g.output_len(), -1.0, 1.0),
                vec![f32::NAN; g.input_len()],
            ],
            ELEMENTWISE,
            &|b| {
                Op::AvgPoolBackward(AvgPoolBackward {
                    grad_output: b[0].region(g.output_len()),
                    grad_input: b[1].region(g.input_len()),
                    geometry: g,
                })
            },
        );
    }
}

/// A 4×4 image pooled 2×2: the maxima, and each window's gradient at its first maximum (the window
/// `[[5, 5], [1, 5]]` ties three ways and sends its gradient to the top-left 5).
#[test]
fn max_pool_by_hand() {
    let g = geometry((1, 1, 4, 4, 2, 2));
    #[rustfmt::skip]
    let x = vec![
        1.0, 2.0, 5.0, 5.0,
        3.0, 0.0, 1.0, 5.0,
        -1.0, -2.0, 0.0, 0.0,
        -3.0, -1.0, 0.0, 0.0,
    ];
    let forward = run_op(&mut CpuBackend::new(), &[x.clone(), vec![0.0; 4]], &|b| {
        Op::MaxPool(MaxPool {
            input: b[0].region(16),
            output: b[1].region(4),
            geometry: g,
        })
    });
    assert_eq!(forward[1], [3.0, 5.0, -1.0, 0.0]);
    let backward = run_op(
        &mut CpuBackend::new(),
        &[x, vec![10.0, 20.0, 30.0, 40.0], vec![0.0; 16]],
        &|b| {
            Op::MaxPoolBackward(MaxPoolBackward {
                input: b[0].region(16),
                grad_output: b[1].region(4),
                grad_input: b[2].region(16),
                geometry: g,
            })
        },
    );
    #[rustfmt::skip]
    let expected = vec![
        0.0, 0.0, 20.0, 0.0,
        10.0, 0.0, 0.0, 0.0,
        30.0, 0.0, 40.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(backward[2], expected);
}

/// Overlapping 2×2 windows with stride 1 on a 3×3 image: the mean of each, and the centre pixel, in all
/// four windows, receives a quarter of each window's gradient.
#[test]
fn avg_pool_by_hand() {
    let g = geometry((1, 1, 3, 3, 2, 1));
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let forward = run_op(&mut CpuBackend::new(), &[x, vec![0.0; 4]], &|b| {
        Op::AvgPool(AvgPool {
            input: b[0].region(9),
            output: b[1].region(4),
            geometry: g,
        })
    });
    assert_eq!(forward[1], [3.0, 4.0, 6.0, 7.0]);
    let backward = run_op(
        &mut CpuBackend::new(),
        &[vec![4.0, 8.0, 12.0, 16.0], vec![0.0; 9]],
        &|b| {
            Op::AvgPoolBackward(AvgPoolBackward {
                grad_output: b[0].region(4),
                grad_input: b[1].region(9),
                geometry: g,
            })
        },
    );
    assert_eq!(backward[1], [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
}
