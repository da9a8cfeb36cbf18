//! Parity of the convolution ops (`src/ops/conv.rs`, `shaders/conv.wgsl`) over edge geometries and random
//! ones (proptest); the CPU reference is checked against a direct convolution in f64, and `col2im`
//! against `im2col` as its adjoint.

use crate::common::{assert_close, parity, run_op, uniform, ELEMENTWISE, MATMUL};
use crate::gpu_backend;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use wgtrain::backend::Op;
use wgtrain::ops::{Col2im, Geometry, Im2col};
use wgtrain::CpuBackend;

/// (batch, channels, height, width, kernel, stride, padding): a 1×1 image, a kernel as large as the padded
/// image, strides that skip pixels, padding wider than the stride, non-square images.
pub(crate) const GEOMETRIES: [(usize, usize, usize, usize, usize, usize, usize); 7] = [
    (1, 1, 1, 1, 1, 1, 0),
    (2, 3, 5, 7, 3, 1, 1),
    (3, 2, 8, 8, 3, 2, 1),
    (1, 1, 4, 4, 4, 1, 0),
    (2, 4, 6, 5, 2, 3, 2),
    (1, 2, 3, 3, 5, 1, 1),
    (4, 1, 28, 28, 3, 1, 1),
];

pub(crate) fn geometry(
    (batch, channels, height, width, kernel, stride, padding): (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
    ),
) -> Geometry {
    Geometry {
        batch,
        channels,
        height,
        width,
        kernel_h: kernel,
        kernel_w: kernel,
        stride,
        padding,
    }
}

fn cols_len(g: &Geometry) -> usize {
    g.batch * g.out_positions() * g.patch()
}

fn check_im2col(gpu: &mut wgtrain::WgpuBackend, g: Geometry) {
    parity(
        gpu,
        &format!("im2col {g:?}"),
        &[
            uniform(7, g.input_len(), -2.0, 2.0),
            vec![f32::NAN; cols_len(&g)],
        ],
        ELEMENTWISE,
        &|b| {
            Op::Im2col(Im2col {
                input: b[0].region(g.input_len()),
                cols: b[1].region(cols_len(&g)),
                geometry: g,
            })
        },
    );
}

fn check_col2im(gpu: &mut wgtrain::WgpuBackend, g: Geometry) {
    parity(
        gpu,
        &format!("col2im {g:?}"),
        &[
            uniform(8, cols_len(&g), -1.0, 1.0),
            vec![f32::NAN; g.input_len()],
        ],
        ELEMENTWISE,
        &|b| {
            Op::Col2im(Col2im {
                grad_cols: b[0].region(cols_len(&g)),
                grad_input: b[1].region(g.input_len()),
                geometry: g,
            })
        },
    );
}

#[test]
fn im2col() {
    let Some(mut gpu) = gpu_backend() else { return };
    for shape in GEOMETRIES {
        check_im2col(&mut gpu, geometry(shape));
    }
}

#[test]
fn col2im() {
    let Some(mut gpu) = gpu_backend() else { return };
    for shape in GEOMETRIES {
        check_col2im(&mut gpu, geometry(shape));
    }
}

/// Random geometries, 48 cases from a fixed seed: both ops agree between the backends.
#[test]
fn random_geometries_agree_between_cpu_and_gpu() {
    let Some(gpu) = gpu_backend() else { return };
    let gpu = std::cell::RefCell::new(gpu);
    let config = Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let shapes = (
        1..4usize,
        1..5usize,
        1..12usize,
        1..12usize,
        1..6usize,
        1..4usize,
        0..3usize,
    );
    runner
        .run(&shapes, |(n, c, h, w, k, s, p)| {
            prop_assume!(k <= h + 2 * p && k <= w + 2 * p);
            let g = geometry((n, c, h, w, k, s, p));
            check_im2col(&mut gpu.borrow_mut(), g);
            check_col2im(&mut gpu.borrow_mut(), g);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A direct convolution in f64: `out[n, o, oy, ox] = Σ_(c, ky, kx) x · w`, the definition PyTorch uses.
pub(crate) fn direct_conv(x: &[f32], w: &[f32], g: &Geometry, outs: usize) -> Vec<f32> {
    let (oh, ow) = (g.out_height(), g.out_width());
    let mut out = vec![0.0; g.batch * outs * oh * ow];
    for n in 0..g.batch {
        for o in 0..outs {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = 0.0f64;
                    for c in 0..g.channels {
                        for ky in 0..g.kernel_h {
                            for kx in 0..g.kernel_w {
                                let y = (oy * g.stride + ky) as isize - g.padding as isize;
                                let xx = (ox * g.stride + kx) as isize - g.padding as isize;
                                if y < 0
                                    || xx < 0
                                    || y >= g.height as isize
                                    || xx >= g.width as isize
                                {
                                    continue;
                                }
                                let xv = x[((n * g.channels + c) * g.height + y as usize)
                                    * g.width
                                    + xx as usize];
                                let wv =
                                    w[((o * g.channels + c) * g.kernel_h + ky) * g.kernel_w + kx];
                                sum += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    out[((n * outs + o) * oh + oy) * ow + ox] = sum as f32;
                }
            }
        }
    }
    out
}

/// im2col then a product with the weights (PyTorch's `[out, c, ky, kx]`, as `[out, patch]`) is the
/// convolution, position by position.
#[test]
fn im2col_then_a_product_is_the_convolution() {
    for shape in GEOMETRIES {
        let g = geometry(shape);
        let outs = 3;
        let x = uniform(1, g.input_len(), -1.0, 1.0);
        let w = uniform(2, outs * g.patch(), -1.0, 1.0);
        let mut cols = vec![0.0; cols_len(&g)];
        wgtrain::ops::conv::im2col(&x, &mut cols, &g);
        let positions = g.out_positions();
        let mut product = vec![0.0; g.batch * outs * positions];
        for n in 0..g.batch {
            for o in 0..outs {
                for pos in 0..positions {
                    let row = &cols[(n * positions + pos) * g.patch()..][..g.patch()];
                    let weights = &w[o * g.patch()..][..g.patch()];
                    product[(n * outs + o) * positions + pos] =
                        row.iter().zip(weights).map(|(a, b)| a * b).sum();
                }
            }
        }
        assert_close(
            &format!("conv {g:?}"),
            &product,
            &direct_conv(&x, &w, &g, outs),
            MATMUL,
        );
    }
}

/// `col2im` is the adjoint of `im2col`: ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩, so it sends every patch value's
/// gradient back to the pixel it was read from.
#[test]
fn col2im_is_the_adjoint_of_im2col() {
    for shape in GEOMETRIES {
        let g = geometry(shape);
        let x = uniform(3, g.input_len(), -1.0, 1.0);
        let y = uniform(4, cols_len(&g), -1.0, 1.0);
        let outs = run_op(
            &mut CpuBackend::new(),
            &[x.clone(), vec![0.0; cols_len(&g)]],
            &|b| {
                Op::Im2col(Im2col {
                    input: b[0].region(g.input_len()),
                    cols: b[1].region(cols_len(&g)),
                    geometry: g,
                })
            },
        );
        let back = run_op(
            &mut CpuBackend::new(),
            &[y.clone(), vec![0.0; g.input_len()]],
            &|b| {
                Op::Col2im(Col2im {
                    grad_cols: b[0].region(cols_len(&g)),
                    grad_input: b[1].region(g.input_len()),
                    geometry: g,
                })
            },
        );
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        };
        let (lhs, rhs) = (dot(&outs[1], &y), dot(&x, &back[1]));
        assert!(
            (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
            "{g:?}: {lhs} vs {rhs}"
        );
    }
}
