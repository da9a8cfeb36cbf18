//! Per-op parity: every op runs on the CPU reference and on the wgpu backend from the same inputs, over a grid
//! of shapes that are not multiples of any workgroup size. Each test is named after the op (and WGSL entry
//! point) it checks; the loss and optimizer ops are in `gpu_vs_cpu_loss_optim.rs`.

mod common;

use common::{assert_close, gpu_backend, parity, uniform, ELEMENTWISE, MATMUL};
use wgtrain::backend::Op;
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

/// Pre-activations covering both tails (±50), the ReLU kink and small values.
fn pre_activations() -> Vec<f32> {
    let mut xs = vec![
        -50.0, -20.0, -9.5, -1.0, -1e-3, -0.0, 0.0, 1e-3, 0.5, 1.0, 9.5, 20.0, 50.0,
    ];
    xs.extend(uniform(99, 51, -6.0, 6.0));
    xs
}

fn elementwise_activations() -> Vec<Activation> {
    let mut acts: Vec<Activation> = Activation::ALL
        .into_iter()
        .filter(|a| a.is_elementwise())
        .collect();
    acts.push(Activation::LeakyRelu(0.2));
    acts
}

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
        for activation in elementwise_activations() {
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
                &|b| Op::MatmulBiasAct {
                    input: b[0].region(m * k),
                    weights: b[1].region(k * n),
                    bias: b[2].region(n),
                    output: b[3].region(m * n),
                    m,
                    k,
                    n,
                    activation,
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
            &|b| Op::MatmulNt {
                grad_output: b[0].region(m * k),
                weights: b[1].region(n * k),
                grad_input: b[2].region(m * n),
                m,
                k,
                n,
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
            &|b| Op::MatmulTn {
                input: b[0].region(k * m),
                grad_output: b[1].region(k * n),
                grad_weights: b[2].region(m * n),
                m,
                k,
                n,
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

/// Every elementwise activation on ±50 and the kink, through the matmul epilogue with a 1x1 identity weight.
#[test]
fn activations_at_extremes() {
    let Some(mut gpu) = gpu_backend() else { return };
    let xs = pre_activations();
    let m = xs.len();
    for activation in elementwise_activations() {
        let out = parity(
            &mut gpu,
            &format!("{activation} on ±50"),
            &[xs.clone(), vec![1.0], vec![0.0], vec![0.0; m]],
            ELEMENTWISE,
            &|b| Op::MatmulBiasAct {
                input: b[0].region(m),
                weights: b[1].region(1),
                bias: b[2].region(1),
                output: b[3].region(m),
                m,
                k: 1,
                n: 1,
                activation,
            },
        );
        assert!(
            out[3].iter().all(|y| y.is_finite()),
            "{activation} produced a non-finite value: {:?}",
            out[3]
        );
    }
}

#[test]
fn act_backward() {
    let Some(mut gpu) = gpu_backend() else { return };
    let xs = pre_activations();
    for activation in elementwise_activations() {
        let output: Vec<f32> = xs.iter().map(|&x| activation.apply(x)).collect();
        let (rows, cols) = (xs.len() / 4, 4);
        let n = rows * cols;
        let grad = uniform(5, n, -2.0, 2.0);
        let out = parity(
            &mut gpu,
            &format!("act_backward {activation}"),
            &[output[..n].to_vec(), grad.clone()],
            ELEMENTWISE,
            &|b| Op::ActBackward {
                output: b[0].region(n),
                grad: b[1].region(n),
                rows,
                cols,
                activation,
            },
        );
        let expected: Vec<f32> = grad
            .iter()
            .zip(&output)
            .map(|(g, &y)| g * activation.derivative_from_output(y))
            .collect();
        assert_close(
            &format!("act_backward {activation} (CPU vs formula)"),
            &out[1],
            &expected,
            ELEMENTWISE,
        );
    }
}

#[test]
fn softmax() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &(rows, cols) in &[(1, 1), (3, 7), (65, 10), (257, 33)] {
        let mut values = uniform(rows as u64, rows * cols, -5.0, 5.0);
        values[0] = 50.0;
        values[rows * cols - 1] = -50.0;
        let out = parity(
            &mut gpu,
            &format!("softmax {rows}x{cols}"),
            &[values],
            ELEMENTWISE,
            &|b| Op::Softmax {
                values: b[0].region(rows * cols),
                rows,
                cols,
            },
        );
        for row in out[0].chunks(cols) {
            assert!(
                (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "softmax row does not sum to 1: {row:?}"
            );
        }
    }
}

#[test]
fn softmax_backward() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &(rows, cols) in &[(1, 1), (3, 7), (65, 10), (257, 33)] {
        let mut output = uniform(rows as u64 + 7, rows * cols, -3.0, 3.0);
        wgtrain::activation::softmax_rows(&mut output, cols);
        let grad = uniform(rows as u64 + 8, rows * cols, -1.0, 1.0);
        parity(
            &mut gpu,
            &format!("softmax_backward {rows}x{cols}"),
            &[output, grad],
            ELEMENTWISE,
            &|b| Op::ActBackward {
                output: b[0].region(rows * cols),
                grad: b[1].region(rows * cols),
                rows,
                cols,
                activation: Activation::Softmax,
            },
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
        let tol = common::Tolerance {
            abs: 2e-3,
            rel: 1e-4,
        };
        parity(
            &mut gpu,
            &format!("matmul_bias_act k={k}"),
            &[a.clone(), b.clone(), bias, vec![0.0; m * n]],
            tol,
            &|r| Op::MatmulBiasAct {
                input: r[0].region(m * k),
                weights: r[1].region(k * n),
                bias: r[2].region(n),
                output: r[3].region(m * n),
                m,
                k,
                n,
                activation: Activation::Tanh,
            },
        );
        parity(
            &mut gpu,
            &format!("matmul_nt k={k}"),
            &[a.clone(), b.clone(), vec![0.0; m * n]],
            tol,
            &|r| Op::MatmulNt {
                grad_output: r[0].region(m * k),
                weights: r[1].region(n * k),
                grad_input: r[2].region(m * n),
                m,
                k,
                n,
            },
        );
        parity(
            &mut gpu,
            &format!("matmul_tn k={k}"),
            &[a.clone(), b.clone(), vec![0.0; m * n]],
            tol,
            &|r| Op::MatmulTn {
                input: r[0].region(k * m),
                grad_output: r[1].region(k * n),
                grad_weights: r[2].region(m * n),
                m,
                k,
                n,
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
    wgtrain::cpu::matmul_bias_act(&a, &b, &vec![0.0; n], &mut c, (m, k, n), Activation::Linear);
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
    wgtrain::cpu::matmul_nt(&a, &b, &mut c, (m, k, n));
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
    wgtrain::cpu::matmul_tn(&a, &b, &mut c, (m, k, n));
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
