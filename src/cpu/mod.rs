//! The CPU backend: plain Rust loops plus `matrixmultiply` for the products. It is the reference every GPU
//! result is tested against and the fallback when no GPU adapter exists. Each public function here is one
//! [`Op`] and carries the name of its WGSL entry point. `gemm.rs` holds the matrix products.

mod gemm;
mod pool;

use crate::activation::{softmax_rows, Activation};
use crate::backend::{
    check_op, Backend, BufferId, Counters, DeviceInfo, KernelId, Op, Region, STATS_LEN,
};
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::optim::hyper::{
    BETA1, BETA2, BIAS_CORRECTION1, BIAS_CORRECTION2, EPSILON, LEARNING_RATE, LEN as HYPER_LEN,
    MOMENTUM, STEP, WEIGHT_DECAY,
};
use gemm::{gemm, gemm_then};
use pool::available_threads;
use pool::{for_ranges, Disjoint};

/// Runs ops immediately on host memory.
pub struct CpuBackend {
    info: DeviceInfo,
    buffers: Vec<Vec<f32>>,
    kernels: Vec<Op>,
    counters: Counters,
    /// Kernels ran since the last submit: a read then counts the submit a GPU would make for them.
    unsubmitted: bool,
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
            unsubmitted: false,
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
                row_hits,
                rows,
                cols,
                loss,
            } => {
                let mut grad_buf = self.take(grad);
                let mut loss_buf = self.take(row_loss);
                let mut hits_buf = self.take(row_hits);
                let grad_range = window(&mut grad_buf, grad, rows * cols);
                let loss_range = window(&mut loss_buf, row_loss, rows);
                let hits_range = window(&mut hits_buf, row_hits, rows);
                loss_grad(
                    self.slice(prediction, rows * cols),
                    self.slice(target, rows * loss.target_width(cols)),
                    &mut grad_buf[grad_range],
                    &mut loss_buf[loss_range],
                    &mut hits_buf[hits_range],
                    cols,
                    loss,
                );
                self.put(grad, grad_buf);
                self.put(row_loss, loss_buf);
                self.put(row_hits, hits_buf);
            }
            Op::LossSum {
                row_loss,
                row_hits,
                stats,
                rows,
                scale,
            } => {
                let mut out = self.take(stats);
                let range = window(&mut out, stats, STATS_LEN);
                loss_sum(
                    self.slice(row_loss, rows),
                    self.slice(row_hits, rows),
                    &mut out[range],
                    scale,
                );
                self.put(stats, out);
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
            Op::AdvanceStep { hyper } => {
                let mut out = self.take(hyper);
                let range = window(&mut out, hyper, HYPER_LEN);
                advance_step(&mut out[range]);
                self.put(hyper, out);
            }
            Op::SgdUpdate {
                params,
                grads,
                hyper,
            } => {
                let mut out = self.take(params);
                let range = window(&mut out, params, params.len);
                sgd_update(
                    &mut out[range],
                    self.slice(grads, params.len),
                    self.slice(hyper, HYPER_LEN),
                );
                self.put(params, out);
            }
            Op::MomentumUpdate {
                params,
                grads,
                velocity,
                hyper,
            } => {
                let mut out = self.take(params);
                let mut state = self.take(velocity);
                let range = window(&mut out, params, params.len);
                let state_range = window(&mut state, velocity, params.len);
                momentum_update(
                    &mut out[range],
                    self.slice(grads, params.len),
                    &mut state[state_range],
                    self.slice(hyper, HYPER_LEN),
                );
                self.put(params, out);
                self.put(velocity, state);
            }
            Op::AdamUpdate {
                params,
                grads,
                first_moment,
                second_moment,
                hyper,
            } => {
                let mut out = self.take(params);
                let mut m = self.take(first_moment);
                let mut v = self.take(second_moment);
                let range = window(&mut out, params, params.len);
                let m_range = window(&mut m, first_moment, params.len);
                let v_range = window(&mut v, second_moment, params.len);
                adam_update(
                    &mut out[range],
                    self.slice(grads, params.len),
                    (&mut m[m_range], &mut v[v_range]),
                    self.slice(hyper, HYPER_LEN),
                );
                self.put(params, out);
                self.put(first_moment, m);
                self.put(second_moment, v);
            }
            Op::GatherRows {
                source,
                order,
                cursor,
                output,
                rows,
                cols,
            } => {
                let mut out = self.take(output);
                let range = window(&mut out, output, rows * cols);
                gather_rows(
                    self.slice(source, source.len),
                    self.slice(order, order.len),
                    self.slice(cursor, 1)[0],
                    &mut out[range],
                    cols,
                );
                self.put(output, out);
            }
            Op::AdvanceCursor { cursor, rows } => {
                let mut out = self.take(cursor);
                let range = window(&mut out, cursor, 1);
                advance_cursor(&mut out[range], rows);
                self.put(cursor, out);
            }
        }
    }
}

impl Backend for CpuBackend {
    fn memory_limits(&self) -> crate::memory::MemoryLimits {
        crate::memory::MemoryLimits {
            max_buffer_bytes: isize::MAX as u64,
            available_bytes: crate::memory::host_available_bytes(),
            host_memory: true,
        }
    }

    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn alloc(&mut self, label: &str, len: usize) -> Result<BufferId> {
        self.buffers
            .push(crate::memory::zeros(&format!("buffer `{label}`"), len)?);
        self.counters.allocations += 1;
        self.counters.live_bytes += (len * 4) as u64;
        Ok(BufferId(self.buffers.len() - 1))
    }

    fn free(&mut self, buffer: BufferId) -> Result<()> {
        let buf = self
            .buffers
            .get_mut(buffer.0)
            .ok_or_else(|| Error::value("buffer", format!("{buffer:?} does not exist")))?;
        self.counters.live_bytes -= (buf.len() * 4) as u64;
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
                if std::mem::take(&mut self.unsubmitted) {
                    self.counters.submits += 1;
                }
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
        self.unsubmitted = true;
        Ok(())
    }

    fn submit(&mut self) -> Result<()> {
        self.counters.submits += 1;
        self.unsubmitted = false;
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn profile(&mut self, kernels: &[KernelId]) -> Result<Option<Vec<(&'static str, f64)>>> {
        let mut times = Vec::with_capacity(kernels.len());
        for &kernel in kernels {
            let name =
                self.kernels.get(kernel.0).map(Op::name).ok_or_else(|| {
                    Error::value("kernel", format!("{kernel:?} was not prepared"))
                })?;
            let start = std::time::Instant::now();
            self.enqueue(kernel)?;
            times.push((name, start.elapsed().as_secs_f64() * 1e6));
        }
        self.submit()?;
        Ok(Some(times))
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
    let bias_act = |rows: &mut [f32]| {
        for row in rows.chunks_exact_mut(n) {
            for (y, &b) in row.iter_mut().zip(bias) {
                *y = activation.apply(*y + b);
            }
        }
    };
    gemm_then((m, k, n), input, (k, 1), weights, (n, 1), output, &bias_act);
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

/// Per-row loss, hits and gradient for the whole batch (see [`Loss::row_loss_grad`], [`Loss::row_hits`]).
pub fn loss_grad(
    prediction: &[f32],
    target: &[f32],
    grad: &mut [f32],
    row_loss: &mut [f32],
    row_hits: &mut [f32],
    cols: usize,
    loss: Loss,
) {
    let rows = row_loss.len();
    let width = loss.target_width(cols);
    for i in 0..rows {
        let prediction = &prediction[i * cols..(i + 1) * cols];
        let target = &target[i * width..(i + 1) * width];
        row_loss[i] = loss.row_loss_grad(
            prediction,
            target,
            &mut grad[i * cols..(i + 1) * cols],
            rows,
        );
        row_hits[i] = loss.row_hits(prediction, target);
    }
}

/// `stats[0] = scale · Σ row_loss`; `stats[1] += Σ row_loss`; `stats[2] += Σ row_hits`; `stats[3] += 1`;
/// `stats[4]` records the first step with a non-finite loss. Sums in index order.
pub fn loss_sum(row_loss: &[f32], row_hits: &[f32], stats: &mut [f32], scale: f32) {
    let loss: f32 = row_loss.iter().sum();
    stats[0] = scale * loss;
    stats[1] += loss;
    stats[2] += row_hits.iter().sum::<f32>();
    stats[3] += 1.0;
    if stats[4] == 0.0 && !stats[0].is_finite() {
        stats[4] = stats[3];
    }
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

/// `step += 1`, then Adam's bias corrections `1 − β^step`.
pub fn advance_step(hyper: &mut [f32]) {
    hyper[STEP] += 1.0;
    hyper[BIAS_CORRECTION1] = 1.0 - hyper[BETA1].powf(hyper[STEP]);
    hyper[BIAS_CORRECTION2] = 1.0 - hyper[BETA2].powf(hyper[STEP]);
}

// The updates run over disjoint ranges of the parameters, split between threads when long (`for_ranges`);
// each element's arithmetic is the same however it is split.

/// `w −= lr · (g + wd·w)`.
pub fn sgd_update(params: &mut [f32], grads: &[f32], hyper: &[f32]) {
    let (lr, wd) = (hyper[LEARNING_RATE], hyper[WEIGHT_DECAY]);
    let params = Disjoint::new(params);
    for_ranges(params.len(), &|r| {
        // SAFETY: `for_ranges` hands each part its own range.
        let params = unsafe { params.range(r.clone()) };
        for (w, &g) in params.iter_mut().zip(&grads[r]) {
            *w -= lr * (g + wd * *w);
        }
    });
}

/// `v = μ·v + (g + wd·w);  w −= lr · v`.
pub fn momentum_update(params: &mut [f32], grads: &[f32], velocity: &mut [f32], hyper: &[f32]) {
    let (lr, mu, wd) = (hyper[LEARNING_RATE], hyper[MOMENTUM], hyper[WEIGHT_DECAY]);
    let (params, velocity) = (Disjoint::new(params), Disjoint::new(velocity));
    for_ranges(params.len(), &|r| {
        // SAFETY: `for_ranges` hands each part its own range.
        let (params, velocity) = unsafe { (params.range(r.clone()), velocity.range(r.clone())) };
        for ((w, &g), v) in params.iter_mut().zip(&grads[r]).zip(velocity) {
            *v = mu * *v + (g + wd * *w);
            *w -= lr * *v;
        }
    });
}

/// Adam as PyTorch computes it: `w −= (lr / bc1) · m / (√v / √bc2 + ε)`.
pub fn adam_update(
    params: &mut [f32],
    grads: &[f32],
    (m, v): (&mut [f32], &mut [f32]),
    hyper: &[f32],
) {
    let (lr, wd, eps) = (hyper[LEARNING_RATE], hyper[WEIGHT_DECAY], hyper[EPSILON]);
    let (beta1, beta2) = (hyper[BETA1], hyper[BETA2]);
    let step_size = lr / hyper[BIAS_CORRECTION1];
    let bias_correction2_sqrt = hyper[BIAS_CORRECTION2].sqrt();
    let (params, m, v) = (Disjoint::new(params), Disjoint::new(m), Disjoint::new(v));
    for_ranges(params.len(), &|r| {
        // SAFETY: `for_ranges` hands each part its own range.
        let (params, m, v) = unsafe {
            (
                params.range(r.clone()),
                m.range(r.clone()),
                v.range(r.clone()),
            )
        };
        for (((w, &g), m), v) in params.iter_mut().zip(&grads[r]).zip(m).zip(v) {
            let g = g + wd * *w;
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *w -= step_size * *m / (v.sqrt() / bias_correction2_sqrt + eps);
        }
    });
}

/// `output[r, :] = source[order[cursor + r], :]`, indices as `u32` bit patterns; zeros past either end.
pub fn gather_rows(source: &[f32], order: &[f32], cursor: f32, output: &mut [f32], cols: usize) {
    let first = cursor.to_bits() as usize;
    for (r, row) in output.chunks_exact_mut(cols).enumerate() {
        let index = order.get(first + r).map(|i| i.to_bits() as usize);
        match index.and_then(|i| source.get(i * cols..(i + 1) * cols)) {
            Some(from) => row.copy_from_slice(from),
            None => row.fill(0.0),
        }
    }
}

/// `cursor += rows`, as a `u32` bit pattern.
pub fn advance_cursor(cursor: &mut [f32], rows: usize) {
    cursor[0] = f32::from_bits(cursor[0].to_bits().wrapping_add(rows as u32));
}
