//! Parity of the matrix products (`src/ops/matmul.rs`, `shaders/matmul.wgsl`) over shapes that are not
//! multiples of any tile, and the CPU reference itself against a naive f64 product.

use crate::common::{assert_close, parity, uniform, MATMUL};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::{MatmulBiasAct, MatmulNt, MatmulTn, Workgroup};
use wgtrain::Activation;

/// (m, n, k): the shapes plus thin, wide and single-row cases.
const SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (3, 5, 7),
    (65, 33, 17),
    (257, 129, 300),
    (7, 1, 9),
    (1, 70, 3),
    (130, 257, 1),
    (64, 10, 784),
];

/// Naive f64 product `a[m,k] · b[k,n]` with element accessors, to check the CPU reference itself.
fn reference_matmul(
    m: usize,
    k: usize,
    n: usize,
    a: impl Fn(usize, usize) -> f32,
    b: impl Fn(usize, usize) -> f32,
) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|p| f64::from(a(i, p)) * f64::from(b(p, j)))
                .sum::<f64>() as f32;
        }
    }
    c
}

#[test]
fn matmul_bias_act() {
    let Some(mut gpu) = gpu_backend() else { return };
    for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
        for activation in super::elementwise_activations() {
            let seed = s as u64 * 10;
            let input = uniform(seed, m * k, -1.0, 1.0);
            let weights = uniform(seed + 1, k * n, -1.0, 1.0);
            let bias = uniform(seed + 2, n, -1.0, 1.0);
            let what = format!("matmul_bias_act {m}x{n}x{k} {activation}");
            let out = parity(
                &mut gpu,
                &what,
                &[
                    input.clone(),
                    weights.clone(),
                    bias.clone(),
                    vec![0.0; m * n],
                ],
                MATMUL,
                &|b| {
                    Op::MatmulBiasAct(MatmulBiasAct {
                        input: b[0].region(m * k),
                        weights: b[1].region(k * n),
                        bias: b[2].region(n),
                        output: b[3].region(m * n),
                        m,
                        k,
                        n,
                        activation,
                        workgroup: None,
                    })
                },
            );
            let mut expected =
                reference_matmul(m, k, n, |i, p| input[i * k + p], |p, j| weights[p * n + j]);
            for (i, y) in expected.iter_mut().enumerate() {
                *y = activation.apply(*y + bias[i % n]);
            }
            assert_close(
                &format!("{what} (CPU vs f64 reference)"),
                &out[3],
                &expected,
                MATMUL,
            );
        }
    }
}

#[test]
fn matmul_nt() {
    let Some(mut gpu) = gpu_backend() else { return };
    for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
        let grad_output = uniform(s as u64, m * k, -1.0, 1.0);
        let weights = uniform(s as u64 + 1, n * k, -1.0, 1.0);
        let what = format!("matmul_nt {m}x{n}x{k}");
        let out = parity(
            &mut gpu,
            &what,
            &[grad_output.clone(), weights.clone(), vec![0.0; m * n]],
            MATMUL,
            &|b| {
                Op::MatmulNt(MatmulNt {
                    grad_output: b[0].region(m * k),
                    weights: b[1].region(n * k),
                    grad_input: b[2].region(m * n),
                    m,
                    k,
                    n,
                    workgroup: None,
                })
            },
        );
        let expected = reference_matmul(
            m,
            k,
            n,
            |i, p| grad_output[i * k + p],
            |p, j| weights[j * k + p],
        );
        assert_close(
            &format!("{what} (CPU vs f64 reference)"),
            &out[2],
            &expected,
            MATMUL,
        );
    }
}

#[test]
fn matmul_tn() {
    let Some(mut gpu) = gpu_backend() else { return };
    for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
        let input = uniform(s as u64, k * m, -1.0, 1.0);
        let grad_output = uniform(s as u64 + 1, k * n, -1.0, 1.0);
        let what = format!("matmul_tn {m}x{n}x{k}");
        let out = parity(
            &mut gpu,
            &what,
            &[input.clone(), grad_output.clone(), vec![0.0; m * n]],
            MATMUL,
            &|b| {
                Op::MatmulTn(MatmulTn {
                    input: b[0].region(k * m),
                    grad_output: b[1].region(k * n),
                    grad_weights: b[2].region(m * n),
                    m,
                    k,
                    n,
                    workgroup: None,
                })
            },
        );
        let expected = reference_matmul(
            m,
            k,
            n,
            |i, p| input[p * m + i],
            |p, j| grad_output[p * n + j],
        );
        assert_close(
            &format!("{what} (CPU vs f64 reference)"),
            &out[2],
            &expected,
            MATMUL,
        );
    }
}

/// Regression: llvmpipe ends a shader invocation after 65535 loop iterations, which silently cut every sum
/// longer than that (a full batch of 70000 rows, a 40000-wide layer). Long sums now run in windows.
#[test]
fn llvmpipe_loop_limit_long_matmul_sums() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &(m, n, k) in &[(2, 3, 40_000), (3, 2, 70_000)] {
        let a = uniform(1, m * k, -1.0, 1.0);
        let b = uniform(2, k * n, -1.0, 1.0);
        let bias = uniform(3, n, -1.0, 1.0);
        // Sums of up to 70000 products of values in [-1, 1]: f32 rounding in another order.
        let tol = crate::common::Tolerance {
            abs: 2e-3,
            rel: 1e-4,
        };
        parity(
            &mut gpu,
            &format!("matmul_bias_act k={k}"),
            &[a.clone(), b.clone(), bias, vec![0.0; m * n]],
            tol,
            &|r| {
                Op::MatmulBiasAct(MatmulBiasAct {
                    input: r[0].region(m * k),
                    weights: r[1].region(k * n),
                    bias: r[2].region(n),
                    output: r[3].region(m * n),
                    m,
                    k,
                    n,
                    activation: Activation::Tanh,
                    workgroup: None,
                })
            },
        );
        parity(
            &mut gpu,
            &format!("matmul_nt k={k}"),
            &[a.clone(), b.clone(), vec![0.0; m * n]],
            tol,
            &|r| {
                Op::MatmulNt(MatmulNt {
                    grad_output: r[0].region(m * k),
                    weights: r[1].region(n * k),
                    grad_input: r[2].region(m * n),
                    m,
                    k,
                    n,
                    workgroup: None,
                })
            },
        );
        parity(
            &mut gpu,
            &format!("matmul_tn k={k}"),
            &[a.clone(), b.clone(), vec![0.0; m * n]],
            tol,
            &|r| {
                Op::MatmulTn(MatmulTn {
                    input: r[0].region(k * m),
                    grad_output: r[1].region(k * n),
                    grad_weights: r[2].region(m * n),
                    m,
                    k,
                    n,
                    workgroup: None,
                })
            },
        );
    }
}

/// Products past the CPU backend's threading threshold (2^18 multiply-adds) are split between threads: by
/// rows of the output, or by columns when it has too few rows, with a ragged last part. Every form still
/// matches the f64 reference (all rows of the small cases, a sample of the large one's).
#[test]
fn cpu_threaded_products_match_the_reference() {
    // (m, n, k): split by rows; by columns (8 rows, 1000 columns); rows in uneven parts (64 + 36).
    for (m, n, k) in [(1024, 1024, 64), (8, 1000, 100), (100, 37, 200)] {
        check_cpu_forms(m, n, k);
    }
}

/// Two threads multiplying at once: one gets the helper threads, the other runs its product whole, and
/// both are right.
#[test]
fn cpu_concurrent_products_match_the_reference() {
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..20 {
                    check_cpu_forms(100, 300, 120);
                }
            });
        }
    });
}

fn check_cpu_forms(m: usize, n: usize, k: usize) {
    let a = uniform(41, m * k, -1.0, 1.0);
    let b = uniform(42, k * n, -1.0, 1.0);
    let mut c = vec![0.0; m * n];
    let rows: Vec<usize> = if m <= 128 {
        (0..m).collect()
    } else {
        vec![0, 1, m / 2 - 1, m / 2, m / 2 + 1, m - 1]
    };
    let check = |c: &[f32], expected: &dyn Fn(usize, usize) -> f64, what: &str| {
        for &i in &rows {
            let want: Vec<f32> = (0..n).map(|j| expected(i, j) as f32).collect();
            assert_close(
                &format!("{what} {m}x{n}x{k} row {i}"),
                &c[i * n..(i + 1) * n],
                &want,
                MATMUL,
            );
        }
    };
    wgtrain::ops::matmul::matmul_bias_act(
        &a,
        &b,
        &vec![0.0; n],
        &mut c,
        (m, k, n),
        Activation::Linear,
    );
    check(
        &c,
        &|i, j| {
            (0..k)
                .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                .sum()
        },
        "nn",
    );
    // b as [n, k] for the nt form: c = a · bᵀ.
    wgtrain::ops::matmul::matmul_nt(&a, &b, &mut c, (m, k, n));
    check(
        &c,
        &|i, j| {
            (0..k)
                .map(|p| f64::from(a[i * k + p]) * f64::from(b[j * k + p]))
                .sum()
        },
        "nt",
    );
    // a as [k, m] for the tn form: c = aᵀ · b.
    wgtrain::ops::matmul::matmul_tn(&a, &b, &mut c, (m, k, n));
    check(
        &c,
        &|i, j| {
            (0..k)
                .map(|p| f64::from(a[p * m + i]) * f64::from(b[p * n + j]))
                .sum()
        },
        "tn",
    );
}

/// One form's op over fresh buffers `b` (lhs, rhs, bias, output) in workgroup shape `workgroup`.
fn form_op(
    form: &str,
    b: &[wgtrain::backend::BufferId],
    (m, n, k): (usize, usize, usize),
    workgroup: Option<Workgroup>,
) -> Op {
    match form {
        "nn" => Op::MatmulBiasAct(MatmulBiasAct {
            input: b[0].region(m * k),
            weights: b[1].region(k * n),
            bias: b[2].region(n),
            output: b[3].region(m * n),
            m,
            k,
            n,
            activation: Activation::LeakyRelu(0.1),
            workgroup,
        }),
        "nt" => Op::MatmulNt(MatmulNt {
            grad_output: b[0].region(m * k),
            weights: b[1].region(n * k),
            grad_input: b[3].region(m * n),
            m,
            k,
            n,
            workgroup,
        }),
        _ => Op::MatmulTn(MatmulTn {
            input: b[0].region(k * m),
            grad_output: b[1].region(k * n),
            grad_weights: b[3].region(m * n),
            m,
            k,
            n,
            workgroup,
        }),
    }
}

/// Every workgroup shape the wgpu backend may pick (`Workgroup::CANDIDATES`, and for the forward product
/// `FORWARD_CANDIDATES` with the tiled kernel), in every form, over edge
/// shapes, a sum long enough to run in windows, and a product large enough to be tuned: each agrees
/// with the CPU, and gives bitwise the default shape's values on the GPU (the same sums in the same
/// order), so the tuner's choice changes nothing but the time.
#[test]
fn every_workgroup_shape() {
    let Some(mut gpu) = gpu_backend() else { return };
    let shapes = [
        (1, 1, 1),
        (65, 33, 17),
        (7, 1, 9),
        (130, 257, 3),
        (64, 128, 784),
        (3, 6, 20_000),
    ];
    for form in ["nn", "nt", "tn"] {
        let candidates: &[Workgroup] = match form {
            "nn" => &Workgroup::FORWARD_CANDIDATES,
            "nt" => &Workgroup::NT_CANDIDATES,
            _ => &Workgroup::CANDIDATES,
        };
        for (s, &(m, n, k)) in shapes.iter().enumerate() {
            let buffers = [
                uniform(s as u64, m * k, -1.0, 1.0),
                uniform(s as u64 + 1, k * n, -1.0, 1.0),
                uniform(s as u64 + 2, n, -1.0, 1.0),
                vec![f32::NAN; m * n],
            ];
            let tol = crate::common::Tolerance {
                abs: 1e-3,
                rel: 1e-4,
            };
            let default = crate::common::run_op(&mut gpu, &buffers, &|b| {
                form_op(form, b, (m, n, k), Some(Workgroup::DEFAULT))
            });
            for &workgroup in candidates {
                let what = format!("{form} {m}x{n}x{k} workgroup {workgroup}");
                let out = parity(&mut gpu, &what, &buffers, tol, &|b| {
                    form_op(form, b, (m, n, k), Some(workgroup))
                });
                let on_gpu = crate::common::run_op(&mut gpu, &buffers, &|b| {
                    form_op(form, b, (m, n, k), Some(workgroup))
                });
                assert_eq!(on_gpu[3], default[3], "{what}: not bitwise the default's");
                assert_eq!(out[3].len(), m * n);
            }
            // Left to the backend: tuned when large enough, the same values again.
            let chosen =
                crate::common::run_op(&mut gpu, &buffers, &|b| form_op(form, b, (m, n, k), None));
            assert_eq!(
                chosen[3], default[3],
                "{form} {m}x{n}x{k}: the tuned choice differs"
            );
        }
    }
}

/// The forward product through workgroup memory (`matmul_bias_act_tiled`) over the shapes and activations
/// of `matmul_bias_act`, and tiles that straddle every edge: the CPU's values within MATMUL, and bitwise
/// the blocked kernel's on the GPU (each output sums its products in the same order).
/// The vec4-along-k variant of `matmul_nt` gives the plain kernel's values bit for bit, over windows of
/// the sum, edges and every workgroup shape; a k that is not a multiple of 4 runs the plain kernel.
#[test]
fn matmul_nt_k4() {
    let Some(mut gpu) = gpu_backend() else { return };
    let window = wgtrain::ops::launch::REDUCTION_WINDOW;
    let shapes = [
        (1, 1, 4),
        (5, 3, 8),
        (64, 784, 128),
        (33, 65, 12),
        (2, 7, window + 8),
        (3, 2, 7),
    ];
    for (s, &(m, n, k)) in shapes.iter().enumerate() {
        let buffers = [
            uniform(s as u64 * 5, m * k, -1.0, 1.0),
            uniform(s as u64 * 5 + 1, k * n, -1.0, 1.0),
            vec![0.0; 1],
            vec![f32::NAN; m * n],
        ];
        let op = |workgroup: Workgroup| {
            move |b: &[wgtrain::backend::BufferId]| form_op("nt", b, (m, n, k), Some(workgroup))
        };
        let plain = crate::common::run_op(&mut gpu, &buffers, &op(Workgroup::DEFAULT));
        for (x, y) in [(8, 8), (16, 4), (32, 2)] {
            let workgroup = Workgroup::blocked(x, y).along_k();
            let what = format!("matmul_nt_k4 {m}x{n}x{k} workgroup {workgroup}");
            let out = parity(&mut gpu, &what, &buffers, MATMUL, &op(workgroup));
            assert_eq!(out[3].len(), m * n);
            let on_gpu = crate::common::run_op(&mut gpu, &buffers, &op(workgroup));
            assert_eq!(on_gpu[3], plain[3], "{what}: not bitwise matmul_nt's");
        }
        let id = wgtrain::backend::Backend::alloc(&mut gpu, "name check", 1).expect("alloc");
        let ids = [id; 4];
        let entry = form_op("nt", &ids, (m, n, k), Some(Workgroup::DEFAULT.along_k()));
        let expected = if k % 4 == 0 {
            MatmulNt::K4_NAME
        } else {
            MatmulNt::NAME
        };
        assert_eq!(entry.name(), expected, "{m}x{n}x{k}");
    }
}

#[test]
fn matmul_bias_act_tiled() {
    let Some(mut gpu) = gpu_backend() else { return };
    let mut shapes = SHAPES.to_vec();
    shapes.extend([(64, 64, 16), (65, 129, 17), (200, 70, 33), (1, 300, 40)]);
    for (s, &(m, n, k)) in shapes.iter().enumerate() {
        for activation in super::elementwise_activations() {
            let buffers = [
                uniform(s as u64 * 3, m * k, -1.0, 1.0),
                uniform(s as u64 * 3 + 1, k * n, -1.0, 1.0),
                uniform(s as u64 * 3 + 2, n, -1.0, 1.0),
                vec![f32::NAN; m * n],
            ];
            let op = |workgroup: Workgroup| {
                move |b: &[wgtrain::backend::BufferId]| {
                    Op::MatmulBiasAct(MatmulBiasAct {
                        input: b[0].region(m * k),
                        weights: b[1].region(k * n),
                        bias: b[2].region(n),
                        output: b[3].region(m * n),
                        m,
                        k,
                        n,
                        activation,
                        workgroup: Some(workgroup),
                    })
                }
            };
            let what = format!("matmul_bias_act_tiled {m}x{n}x{k} {activation}");
            let tiled = parity(&mut gpu, &what, &buffers, MATMUL, &op(Workgroup::TILED));
            assert_eq!(tiled[3].len(), m * n);
            let blocked = crate::common::run_op(&mut gpu, &buffers, &op(Workgroup::DEFAULT));
            let on_gpu = crate::common::run_op(&mut gpu, &buffers, &op(Workgroup::TILED));
            assert_eq!(
                on_gpu[3], blocked[3],
                "{what}: not bitwise the blocked kernel's"
            );
        }
    }
}
