//! The CPU backend: plain Rust loops plus `matrixmultiply` for the products. It is the reference every GPU
//! result is tested against and the fallback when no GPU adapter exists. Each public function here is one
//! [`Op`] and carries the name of its WGSL entry point.

use crate::activation::{softmax_rows, Activation};
use crate::backend::{check_op, Backend, BufferId, Counters, DeviceInfo, KernelId, Op, Region};
use crate::error::{Error, Result};
use crate::loss::Loss;

/// Runs ops immediately on host memory.
pub struct CpuBackend {
    info: DeviceInfo,
    buffers: Vec<Vec<f32>>,
    kernels: Vec<Op>,
    counters: Counters,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend {
            info: DeviceInfo {
                backend: "cpu".into(),
                adapter: format!("host CPU ({} threads available)", available_threads()),
                driver: "matrixmultiply".into(),
                api: "-".into(),
                device_type: "host".into(),
            },
            buffers: Vec::new(),
            kernels: Vec::new(),
            counters: Counters::default(),
        }
    }

    fn slice(&self, region: Region, len: usize) -> &[f32] {
        &self.buffers[region.buffer.0][region.offset..region.offset + len]
    }

    /// Moves a written buffer out so the op can read the others while writing it (no copy, no allocation).
    fn take(&mut self, region: Region) -> Vec<f32> {
        std::mem::take(&mut self.buffers[region.buffer.0])
    }

    fn put(&mut self, region: Region, buffer: Vec<f32>) {
        self.buffers[region.buffer.0] = buffer;
    }

    fn execute(&mut self, op: Op) {
        let window = |buf: &mut Vec<f32>, r: Region, len: usize| -> std::ops::Range<usize> {
            debug_assert!(r.offset + len <= buf.len());
            r.offset..r.offset + len
        };
        match op {
            Op::MatmulBiasAct {
                input,
                weights,
                bias,
                output,
                m,
                k,
                n,
                activation,
            } => {
                let mut out = self.take(output);
                let range = window(&mut out, output, m * n);
                matmul_bias_act(
                    self.slice(input, m * k),
                    self.slice(weights, k * n),
                    self.slice(bias, n),
                    &mut out[range],
                    (m, k, n),
                    activation,
                );
                self.put(output, out);
            }
            Op::MatmulNt {
                grad_output,
                weights,
                grad_input,
                m,
                k,
                n,
            } => {
                let mut out = self.take(grad_input);
                let range = window(&mut out, grad_input, m * n);
                matmul_nt(
                    self.slice(grad_output, m * k),
                    self.slice(weights, n * k),
                    &mut out[range],
                    (m, k, n),
                );
                self.put(grad_input, out);
            }
            Op::MatmulTn {
                input,
                grad_output,
                grad_weights,
                m,
                k,
                n,
            } => {
                let mut out = self.take(grad_weights);
                let range = window(&mut out, grad_weights, m * n);
                matmul_tn(
                    self.slice(input, k * m),
                    self.slice(grad_output, k * n),
                    &mut out[range],
                    (m, k, n),
                );
                self.put(grad_weights, out);
            }
            Op::Softmax { values, rows, cols } => {
                let mut out = self.take(values);
                let range = window(&mut out, values, rows * cols);
                softmax(&mut out[range], cols);
                self.put(values, out);
            }
            Op::ActBackward {
                output,
                grad,
                rows,
                cols,
                activation,
            } => {
                let mut out = self.take(grad);
                let range = window(&mut out, grad, rows * cols);
                let output = self.slice(output, rows * cols);
                if activation == Activation::Softmax {
                    softmax_backward(output, &mut out[range], cols);
                } else {
                    act_backward(output, &mut out[range], activation);
                }
                self.put(grad, out);
            }
            Op::LossGrad {
                prediction,
                target,
                grad,
                row_loss,
                rows,
                cols,
                loss,
            } => {
                let mut grad_buf = self.take(grad);
                let mut row_buf = self.take(row_loss);
                let grad_range = window(&mut grad_buf, grad, rows * cols);
                let row_range = window(&mut row_buf, row_loss, rows);
                loss_grad(
                    self.slice(prediction, rows * cols),
                    self.slice(target, rows * loss.target_width(cols)),
                    &mut grad_buf[grad_range],
                    &mut row_buf[row_range],
                    cols,
                    loss,
                );
                self.put(grad, grad_buf);
                self.put(row_loss, row_buf);
            }
            Op::LossSum {
                row_loss,
                loss_value,
                rows,
                scale,
            } => {
                let value = loss_sum(self.slice(row_loss, rows), scale);
                self.buffers[loss_value.buffer.0][loss_value.offset] = value;
            }
            Op::BiasGrad {
                grad_output,
                grad_bias,
                rows,
                cols,
            } => {
                let mut out = self.take(grad_bias);
                let range = window(&mut out, grad_bias, cols);
                bias_grad(self.slice(grad_output, rows * cols), &mut out[range], cols);
                self.put(grad_bias, out);
            }
            Op::SgdUpdate {
                params,
                grads,
                learning_rate,
            } => {
                let mut out = self.take(params);
                let range = window(&mut out, params, params.len);
                let lr = self.slice(learning_rate, 1)[0];
                sgd_update(&mut out[range], self.slice(grads, params.len), lr);
                self.put(params, out);
            }
        }
    }
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Backend for CpuBackend {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn alloc(&mut self, _label: &str, len: usize) -> Result<BufferId> {
        self.buffers.push(vec![0.0; len]);
        self.counters.allocations += 1;
        Ok(BufferId(self.buffers.len() - 1))
    }

    fn free(&mut self, buffer: BufferId) -> Result<()> {
        let buf = self
            .buffers
            .get_mut(buffer.0)
            .ok_or_else(|| Error::value("buffer", format!("{buffer:?} does not exist")))?;
        *buf = Vec::new();
        Ok(())
    }

    fn write(&mut self, buffer: BufferId, offset: usize, data: &[f32]) -> Result<()> {
        let buf = self
            .buffers
            .get_mut(buffer.0)
            .ok_or_else(|| Error::value("buffer", format!("{buffer:?} does not exist")))?;
        let end = offset + data.len();
        if end > buf.len() {
            return Err(Error::shape(
                "write",
                format!("at most {} floats", buf.len()),
                format!("{offset}..{end}"),
            ));
        }
        buf[offset..end].copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, region: Region) -> Result<Vec<f32>> {
        let len = self.buffers.get(region.buffer.0).map(Vec::len);
        match len {
            Some(len) if region.offset + region.len <= len => {
                self.counters.readbacks += 1;
                Ok(self.slice(region, region.len).to_vec())
            }
            _ => Err(Error::value(
                "read",
                format!("{region:?} is outside its buffer"),
            )),
        }
    }

    fn prepare(&mut self, op: &Op) -> Result<KernelId> {
        check_op(op, |id| self.buffers.get(id.0).map(Vec::len))?;
        self.kernels.push(*op);
        Ok(KernelId(self.kernels.len() - 1))
    }

    fn enqueue(&mut self, kernel: KernelId) -> Result<()> {
        let op = *self
            .kernels
            .get(kernel.0)
            .ok_or_else(|| Error::value("kernel", format!("{kernel:?} was not prepared")))?;
        self.execute(op);
        Ok(())
    }

    fn submit(&mut self) -> Result<()> {
        self.counters.submits += 1;
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters
    }
}

/// `sgemm` wrapper: `c[m, n] = a · b` where the strides say how `a` and `b` are laid out.
#[allow(clippy::too_many_arguments)]
fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the assert above bounds every index sgemm touches: a[i*rsa + p*csa] for i < m, p < k is inside
    // m*k floats for both layouts used here, likewise b and c (row-major, stride n).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `output = activation(input · weights + bias)`; `input` is `[m, k]`, `weights` `[k, n]`.
pub fn matmul_bias_act(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    (m, k, n): (usize, usize, usize),
    activation: Activation,
) {
    gemm((m, k, n), input, (k, 1), weights, (n, 1), output);
    for row in output.chunks_exact_mut(n) {
        for (y, &b) in row.iter_mut().zip(bias) {
            *y = activation.apply(*y + b);
        }
    }
}

/// `grad_input = grad_output · weightsᵀ`; `grad_output` is `[m, k]`, `weights` `[n, k]`.
pub fn matmul_nt(
    grad_output: &[f32],
    weights: &[f32],
    grad_input: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    gemm((m, k, n), grad_output, (k, 1), weights, (1, k), grad_input);
}

/// `grad_weights = inputᵀ · grad_output`; `input` is `[k, m]`, `grad_output` `[k, n]`.
pub fn matmul_tn(
    input: &[f32],
    grad_output: &[f32],
    grad_weights: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    gemm((m, k, n), input, (1, m), grad_output, (n, 1), grad_weights);
}

/// Row-wise softmax in place.
pub fn softmax(values: &mut [f32], cols: usize) {
    softmax_rows(values, cols);
}

/// `grad ← grad ⊙ f'(output)` for an elementwise activation.
pub fn act_backward(output: &[f32], grad: &mut [f32], activation: Activation) {
    for (g, &y) in grad.iter_mut().zip(output) {
        *g *= activation.derivative_from_output(y);
    }
}

/// Softmax Jacobian-vector product per row: `g_i ← y_i (g_i − Σ_j g_j y_j)`.
pub fn softmax_backward(output: &[f32], grad: &mut [f32], cols: usize) {
    for (g, y) in grad.chunks_exact_mut(cols).zip(output.chunks_exact(cols)) {
        let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
        for (gi, &yi) in g.iter_mut().zip(y) {
            *gi = yi * (*gi - dot);
        }
    }
}

/// Per-row loss and gradient for the whole batch (see [`Loss::row_loss_grad`]).
pub fn loss_grad(
    prediction: &[f32],
    target: &[f32],
    grad: &mut [f32],
    row_loss: &mut [f32],
    cols: usize,
    loss: Loss,
) {
    let rows = row_loss.len();
    let target_width = loss.target_width(cols);
    for (i, out) in row_loss.iter_mut().enumerate() {
        *out = loss.row_loss_grad(
            &prediction[i * cols..(i + 1) * cols],
            &target[i * target_width..(i + 1) * target_width],
            &mut grad[i * cols..(i + 1) * cols],
            rows,
        );
    }
}

/// `scale · Σ row_loss`, in index order.
pub fn loss_sum(row_loss: &[f32], scale: f32) -> f32 {
    scale * row_loss.iter().sum::<f32>()
}

/// Column sums of `grad_output[rows, cols]`, over rows in order.
pub fn bias_grad(grad_output: &[f32], grad_bias: &mut [f32], cols: usize) {
    grad_bias.fill(0.0);
    for row in grad_output.chunks_exact(cols) {
        for (b, &g) in grad_bias.iter_mut().zip(row) {
            *b += g;
        }
    }
}

/// Plain gradient descent: `params −= learning_rate · grads`.
pub fn sgd_update(params: &mut [f32], grads: &[f32], learning_rate: f32) {
    for (p, &g) in params.iter_mut().zip(grads) {
        *p -= learning_rate * g;
    }
}
