//! Per-op parity: every op runs on the CPU reference and on the wgpu backend from the same inputs, over a grid
//! of shapes that are not multiples of any workgroup size; then whole training runs are compared.
//! Each test is named after the op (and WGSL entry point) it checks.

mod common;

use common::{
    assert_close, gpu_backend, uniform, Tolerance, ELEMENTWISE, MATMUL, REDUCTION, TRAINING,
};
use wgtrain::backend::{BufferId, Op};
use wgtrain::{
    Activation, Backend, CpuBackend, Device, Loss, Model, Network, TrainConfig, WgpuBackend,
};

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

/// Allocates `buffers` on `backend`, runs the op built from their ids once, and reads every buffer back.
fn run_op(
    backend: &mut dyn Backend,
    buffers: &[Vec<f32>],
    make: &dyn Fn(&[BufferId]) -> Op,
) -> Vec<Vec<f32>> {
    let ids: Vec<BufferId> = buffers
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let id = backend
                .alloc(&format!("operand{i}"), data.len())
                .expect("alloc");
            backend.write(id, 0, data).expect("write");
            id
        })
        .collect();
    let kernel = backend.prepare(&make(&ids)).expect("prepare");
    backend.enqueue(kernel).expect("enqueue");
    backend.submit().expect("submit");
    ids.iter()
        .zip(buffers)
        .map(|(&id, data)| backend.read(id.region(data.len())).expect("read"))
        .collect()
}

/// Runs the op on both backends and compares every buffer; returns the CPU results.
fn parity(
    gpu: &mut WgpuBackend,
    what: &str,
    buffers: &[Vec<f32>],
    tol: Tolerance,
    make: &dyn Fn(&[BufferId]) -> Op,
) -> Vec<Vec<f32>> {
    let cpu_out = run_op(&mut CpuBackend::new(), buffers, make);
    let gpu_out = run_op(gpu, buffers, make);
    for (i, (g, c)) in gpu_out.iter().zip(&cpu_out).enumerate() {
        assert_close(&format!("{what}, buffer {i}"), g, c, tol);
    }
    cpu_out
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

/// Predictions and targets valid for each loss: probabilities for sse/mse targets, logits including ±50 for
/// bce and ce, class indices for ce.
fn loss_data(loss: Loss, rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut prediction = match loss {
        Loss::Sse | Loss::Mse => uniform(seed, rows * cols, 0.0, 1.0),
        Loss::Bce | Loss::Ce => uniform(seed, rows * cols, -8.0, 8.0),
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
    };
    (prediction, target)
}

#[test]
fn loss_grad() {
    let Some(mut gpu) = gpu_backend() else { return };
    for loss in Loss::ALL {
        for &(rows, cols) in &[(1, 1), (4, 1), (3, 7), (65, 10), (257, 33)] {
            let (prediction, target) = loss_data(loss, rows, cols, rows as u64);
            let out = parity(
                &mut gpu,
                &format!("loss_grad {loss} {rows}x{cols}"),
                &[
                    prediction,
                    target.clone(),
                    vec![0.0; rows * cols],
                    vec![0.0; rows],
                ],
                ELEMENTWISE,
                &|b| Op::LossGrad {
                    prediction: b[0].region(rows * cols),
                    target: b[1].region(target.len()),
                    grad: b[2].region(rows * cols),
                    row_loss: b[3].region(rows),
                    rows,
                    cols,
                    loss,
                },
            );
            assert!(
                out[3].iter().all(|v| v.is_finite() && *v >= 0.0),
                "{loss} row losses: {:?}",
                out[3]
            );
        }
    }
}

#[test]
fn loss_sum() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &rows in &[1, 3, 255, 256, 257, 1000, 4099] {
        let row_loss = uniform(rows as u64, rows, 0.0, 2.0);
        let scale = 1.0 / rows as f32;
        let out = parity(
            &mut gpu,
            &format!("loss_sum {rows}"),
            &[row_loss.clone(), vec![0.0]],
            REDUCTION,
            &|b| Op::LossSum {
                row_loss: b[0].region(rows),
                loss_value: b[1].region(1),
                rows,
                scale,
            },
        );
        let expected = row_loss.iter().map(|&v| f64::from(v)).sum::<f64>() as f32 * scale;
        assert_close("loss_sum (CPU vs f64)", &out[1], &[expected], REDUCTION);
    }
}

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
            &|b| Op::BiasGrad {
                grad_output: b[0].region(rows * cols),
                grad_bias: b[1].region(cols),
                rows,
                cols,
            },
        );
    }
}

#[test]
fn sgd_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    // 4_200_000 floats need more than 65535 workgroups of 64: the dispatch is split over two dimensions.
    for &len in &[1, 63, 65, 1000, 4_200_000] {
        let params = uniform(len as u64, len, -1.0, 1.0);
        let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
        let out = parity(
            &mut gpu,
            &format!("sgd_update {len}"),
            &[params.clone(), grads.clone(), vec![0.1]],
            ELEMENTWISE,
            &|b| Op::SgdUpdate {
                params: b[0].region(len),
                grads: b[1].region(len),
                learning_rate: b[2].region(1),
            },
        );
        assert_close(
            "sgd_update (CPU vs formula)",
            &out[0][len - 1..],
            &[params[len - 1] - 0.1 * grads[len - 1]],
            ELEMENTWISE,
        );
    }
}

/// 50 mini-batch steps of a 3-layer network on each backend from the same seed: the loss after every step
/// and the final parameters agree within [`TRAINING`] (relative 1e-3).
#[test]
fn whole_run_parity() {
    let Some(gpu) = gpu_backend() else { return };
    let mut gpu: Option<Box<dyn Backend>> = Some(Box::new(gpu));
    let cases = [
        (
            Activation::Tanh,
            Activation::Relu,
            Activation::Softmax,
            Loss::Ce,
        ),
        (
            Activation::LeakyRelu(0.01),
            Activation::Sigmoid,
            Activation::Sigmoid,
            Loss::Bce,
        ),
        (
            Activation::Relu,
            Activation::Tanh,
            Activation::Linear,
            Loss::Mse,
        ),
        (
            Activation::Sigmoid,
            Activation::LeakyRelu(0.1),
            Activation::Sigmoid,
            Loss::Sse,
        ),
        (
            Activation::Tanh,
            Activation::Tanh,
            Activation::Softmax,
            Loss::Mse,
        ),
    ];
    for (case, &(first, second, output, loss)) in cases.iter().enumerate() {
        let outputs = if output == Activation::Softmax { 3 } else { 2 };
        let network = Network::builder(6)
            .dense(16, first)
            .dense(12, second)
            .dense(outputs, output)
            .build(loss)
            .expect("valid network");
        let rows = 100;
        let x = uniform(1000 + case as u64, rows * 6, -2.0, 2.0);
        let y: Vec<f32> = match loss {
            Loss::Ce => (0..rows).map(|i| (i % outputs) as f32).collect(),
            Loss::Bce => (0..rows * outputs)
                .map(|i| ((i * 7) % 3 == 0) as u8 as f32)
                .collect(),
            _ if output == Activation::Softmax => (0..rows * outputs)
                .map(|i| ((i % outputs) == (i / outputs) % outputs) as u8 as f32)
                .collect(),
            _ => uniform(2000 + case as u64, rows * outputs, -1.0, 1.0),
        };
        let config = TrainConfig {
            iterations: 1,
            batch_size: Some(32),
            learning_rate: 0.05,
        };
        let mut cpu_model = Model::new(network.clone(), Device::Cpu, 7).expect("cpu model");
        let mut gpu_model =
            Model::with_backend(network, gpu.take().expect("backend"), 7).expect("gpu model");
        let (mut cpu_losses, mut gpu_losses) = (Vec::new(), Vec::new());
        for _ in 0..50 {
            cpu_model.train(&x, &y, &config).expect("cpu step");
            gpu_model.train(&x, &y, &config).expect("gpu step");
            cpu_losses.push(cpu_model.loss().expect("cpu loss"));
            gpu_losses.push(gpu_model.loss().expect("gpu loss"));
        }
        let what = format!("case {case} ({first}, {second}, {output}, {loss})");
        assert!(
            cpu_losses[49] < cpu_losses[0],
            "{what}: loss did not fall: {cpu_losses:?}"
        );
        assert_close(
            &format!("{what} losses"),
            &gpu_losses,
            &cpu_losses,
            TRAINING,
        );
        let cpu_params = cpu_model.parameters().expect("cpu params");
        let gpu_params = gpu_model.parameters().expect("gpu params");
        for (i, (g, c)) in gpu_params.iter().zip(&cpu_params).enumerate() {
            assert_close(
                &format!("{what} layer {i} weights"),
                &g.weights,
                &c.weights,
                TRAINING,
            );
            assert_close(
                &format!("{what} layer {i} bias"),
                &g.bias,
                &c.bias,
                TRAINING,
            );
        }
        // Hand the device on to the next case instead of opening another one.
        gpu = Some(gpu_model.into_backend());
    }
}
