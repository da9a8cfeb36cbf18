//! Parity of batch normalisation (`src/ops/norm.rs`, `shaders/norm.wgsl`) over rows (spatial 1) and images,
//! and the CPU reference against the formulas in f64.

use crate::common::{assert_close, parity, uniform, ELEMENTWISE, REDUCTION};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::{
    BatchNormApply, BatchNormBackward, BatchNormBackwardSums, BatchNormRunning, BatchNormStats,
    NormShape,
};

/// (batch, channels, spatial): one value, rows of features, small and MNIST-sized images, long channels.
const SHAPES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (4, 3, 1),
    (300, 7, 1),
    (2, 5, 49),
    (64, 16, 196),
    (3, 2, 1000),
];

/// Each shape with its second part aligned as the model lays it out (64 floats).
fn shape((batch, channels, spatial): (usize, usize, usize)) -> NormShape {
    NormShape {
        batch,
        channels,
        spatial,
        second: channels.next_multiple_of(64),
    }
}

fn len(s: &NormShape) -> usize {
    s.batch * s.channels * s.spatial
}

#[test]
fn batch_norm_stats() {
    let Some(mut gpu) = gpu_backend() else { return };
    for dims in SHAPES {
        let s = shape(dims);
        let x = uniform(1, len(&s), -2.0, 3.0);
        let out = parity(
            &mut gpu,
            &format!("batch_norm_stats {dims:?}"),
            &[x.clone(), vec![0.0; s.second + s.channels]],
            REDUCTION,
            &|b| {
                Op::BatchNormStats(BatchNormStats {
                    input: b[0].region(len(&s)),
                    stats: b[1].region(s.second + s.channels),
                    shape: s,
                })
            },
        );
        // Channel 0 by the formula: its values are x[n][0][*].
        let values: Vec<f64> = (0..s.batch)
            .flat_map(|n| (0..s.spatial).map(move |j| (n, j)))
            .map(|(n, j)| f64::from(x[(n * s.channels) * s.spatial + j]))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert_close("mean", &[out[1][0]], &[mean as f32], REDUCTION);
        assert_close("variance", &[out[1][s.second]], &[var as f32], REDUCTION);
    }
}

#[test]
fn batch_norm_apply() {
    let Some(mut gpu) = gpu_backend() else { return };
    for dims in SHAPES {
        let s = shape(dims);
        let c = s.channels;
        parity(
            &mut gpu,
            &format!("batch_norm_apply {dims:?}"),
            &[
                uniform(2, len(&s), -2.0, 2.0),
                vec![f32::NAN; len(&s)],
                uniform(3, c, -0.5, 0.5),
                uniform(4, c, 0.0, 2.0),
                uniform(5, c, 0.5, 1.5),
                uniform(6, c, -0.5, 0.5),
            ],
            ELEMENTWISE,
            &|b| {
                Op::BatchNormApply(BatchNormApply {
                    input: b[0].region(len(&s)),
                    output: b[1].region(len(&s)),
                    mean: b[2].region(c),
                    variance: b[3].region(c),
                    gamma: b[4].region(c),
                    beta: b[5].region(c),
                    shape: s,
                    eps: 1e-5,
                })
            },
        );
    }
}

#[test]
fn batch_norm_running() {
    let Some(mut gpu) = gpu_backend() else { return };
    for dims in SHAPES {
        let s = shape(dims);
        let c = s.channels;
        let tracked = 2 * s.second;
        let mut running = vec![0.0; tracked + 1];
        running[s.second..s.second + c].fill(1.0);
        running[tracked] = 5.0;
        let (mean, variance) = (uniform(7, c, -1.0, 1.0), uniform(8, c, 0.0, 2.0));
        let out = parity(
            &mut gpu,
            &format!("batch_norm_running {dims:?}"),
            &[mean.clone(), variance.clone(), running],
            ELEMENTWISE,
            &|b| {
                Op::BatchNormRunning(BatchNormRunning {
                    mean: b[0].region(c),
                    variance: b[1].region(c),
                    running: b[2].region(tracked + 1),
                    tracked,
                    shape: s,
                    momentum: 0.1,
                })
            },
        );
        // PyTorch: running_mean = 0.9·0 + 0.1·mean; running_var = 0.9·1 + 0.1·var·M/(M − 1).
        let m = (s.batch * s.spatial) as f32;
        let unbiased = if m > 1.0 {
            variance[0] * m / (m - 1.0)
        } else {
            variance[0]
        };
        assert_close("running mean", &[out[2][0]], &[0.1 * mean[0]], ELEMENTWISE);
        assert_close(
            "running var",
            &[out[2][s.second]],
            &[0.9 + 0.1 * unbiased],
            ELEMENTWISE,
        );
        assert_eq!(out[2][tracked], 6.0, "one more batch tracked");
    }
}

#[test]
fn batch_norm_backward_sums() {
    let Some(mut gpu) = gpu_backend() else { return };
    for dims in SHAPES {
        let s = shape(dims);
        let c = s.channels;
        parity(
            &mut gpu,
            &format!("batch_norm_backward_sums {dims:?}"),
            &[
                uniform(9, len(&s), -2.0, 2.0),
                uniform(10, len(&s), -1.0, 1.0),
                uniform(11, c, -0.2, 0.2),
                uniform(12, c, 0.5, 2.0),
                vec![0.0; s.second + c],
            ],
            REDUCTION,
            &|b| {
                Op::BatchNormBackwardSums(BatchNormBackwardSums {
                    input: b[0].region(len(&s)),
                    grad_output: b[1].region(len(&s)),
                    mean: b[2].region(c),
                    variance: b[3].region(c),
                    grads: b[4].region(s.second + c),
                    shape: s,
                    eps: 1e-5,
                })
            },
        );
    }
}

#[test]
fn batch_norm_backward() {
    let Some(mut gpu) = gpu_backend() else { return };
    for dims in SHAPES {
        let s = shape(dims);
        let c = s.channels;
        parity(
            &mut gpu,
            &format!("batch_norm_backward {dims:?}"),
            &[
                uniform(13, len(&s), -2.0, 2.0),
                uniform(14, len(&s), -1.0, 1.0),
                vec![f32::NAN; len(&s)],
                uniform(15, c, -0.2, 0.2),
                uniform(16, c, 0.5, 2.0),
                uniform(17, c, 0.5, 1.5),
                uniform(18, s.second + c, -5.0, 5.0),
            ],
            ELEMENTWISE,
            &|b| {
                Op::BatchNormBackward(BatchNormBackward {
                    input: b[0].region(len(&s)),
                    grad_output: b[1].region(len(&s)),
                    grad_input: b[2].region(len(&s)),
                    mean: b[3].region(c),
                    variance: b[4].region(c),
                    gamma: b[5].region(c),
                    sums: b[6].region(s.second + c),
                    shape: s,
                    eps: 1e-5,
                })
            },
        );
    }
}
