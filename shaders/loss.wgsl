// Loss value and gradient for a batch of m rows and n outputs.
//   loss_grad: one invocation per row writes row_loss[row] (unscaled) and the row's gradient.
//     sse, mse: prediction is the activated output a;  ∂L/∂a = 2 (a − y), divided by m·n for mse
//     bce:      prediction is the logit z;  L = max(z, 0) − z·y + ln(1 + e^−|z|),  ∂L/∂z = (σ(z) − y) / (m·n)
//     ce:       prediction is the logit row z, target the class index;
//               L = logsumexp(z) − z_class,  ∂L/∂z = (softmax(z) − onehot) / m
//   loss_grad also writes row_hits[row], the row's correct predictions (same rules as Loss::row_hits):
//     ce: first maximum logit == class;  bce: outputs with (z > 0) == (y > 0.5);
//     sse, mse: (a > 0.5) == (y > 0.5) for one output, first maximum of a == first maximum of y otherwise.
//   loss_sum: one workgroup sums row_loss and row_hits in a fixed order; stats[0] = scale · Σ row_loss (the
//     step's loss), stats[1] += Σ row_loss and stats[2] += Σ row_hits (running sums over an epoch).

struct Dims {
    m: u32,
    k: u32,
    n: u32,
    code: u32, // loss (LOSS_*)
    slope: f32,
    scale: f32, // loss_sum: 1 for a sum, 1 / count for a mean
    _pad0: u32,
    _pad1: u32,
}

const LOSS_SSE: u32 = 0u;
const LOSS_MSE: u32 = 1u;
const LOSS_BCE: u32 = 2u;
const LOSS_CE: u32 = 3u;
const WORKGROUP: u32 = 64u;
const SUM_WORKGROUP: u32 = 256u;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> prediction: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> row_hits: array<f32>;

var<workgroup> partial_losses: array<f32, SUM_WORKGROUP>;
var<workgroup> partial_hits: array<f32, SUM_WORKGROUP>;

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn squared_error_row(base: u32, grad_scale: f32) -> f32 {
    var sum = 0.0;
    for (var j = 0u; j < dims.n; j++) {
        let diff = prediction[base + j] - targets[base + j];
        sum += diff * diff;
        grad[base + j] = grad_scale * diff;
    }
    return sum;
}

fn binary_cross_entropy_row(base: u32, grad_scale: f32) -> f32 {
    var sum = 0.0;
    for (var j = 0u; j < dims.n; j++) {
        let z = prediction[base + j];
        let y = targets[base + j];
        sum += max(z, 0.0) - z * y + log(1.0 + exp(-abs(z)));
        grad[base + j] = grad_scale * (sigmoid(z) - y);
    }
    return sum;
}

fn cross_entropy_row(row: u32, base: u32, grad_scale: f32) -> f32 {
    // Negative indices saturate to 0 as in Rust's `as usize`; an index past the classes yields NaN.
    let label = u32(targets[row]);
    var max_z = prediction[base];
    for (var j = 1u; j < dims.n; j++) {
        max_z = max(max_z, prediction[base + j]);
    }
    var sum_exp = 0.0;
    for (var j = 0u; j < dims.n; j++) {
        sum_exp += exp(prediction[base + j] - max_z);
    }
    for (var j = 0u; j < dims.n; j++) {
        let p = exp(prediction[base + j] - max_z) / sum_exp;
        grad[base + j] = grad_scale * (p - select(0.0, 1.0, j == label));
    }
    if label >= dims.n {
        return bitcast<f32>(0x7fc00000u);
    }
    return max_z + log(sum_exp) - prediction[base + label];
}

// Index of the first maximum of `values[base .. base + n]`, where `values` is prediction (from_target false)
// or targets (true).
fn first_max(base: u32, from_target: bool) -> u32 {
    var best = 0u;
    var best_value = select(prediction[base], targets[base], from_target);
    for (var j = 1u; j < dims.n; j++) {
        let v = select(prediction[base + j], targets[base + j], from_target);
        if v > best_value {
            best = j;
            best_value = v;
        }
    }
    return best;
}

fn hits(row: u32, base: u32) -> f32 {
    switch dims.code {
        case LOSS_CE: {
            return select(0.0, 1.0, first_max(base, false) == u32(targets[row]));
        }
        case LOSS_BCE: {
            var count = 0.0;
            for (var j = 0u; j < dims.n; j++) {
                count += select(0.0, 1.0, (prediction[base + j] > 0.0) == (targets[base + j] > 0.5));
            }
            return count;
        }
        default: {
            if dims.n == 1u {
                return select(0.0, 1.0, (prediction[base] > 0.5) == (targets[base] > 0.5));
            }
            return select(0.0, 1.0, first_max(base, false) == first_max(base, true));
        }
    }
}

@compute @workgroup_size(64)
fn loss_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.x + gid.y * groups.x * WORKGROUP;
    if row >= dims.m {
        return;
    }
    let base = row * dims.n;
    let count = f32(dims.m * dims.n);
    var value = 0.0;
    switch dims.code {
        case LOSS_SSE: {
            value = squared_error_row(base, 2.0);
        }
        case LOSS_MSE: {
            value = squared_error_row(base, 2.0 / count);
        }
        case LOSS_BCE: {
            value = binary_cross_entropy_row(base, 1.0 / count);
        }
        case LOSS_CE: {
            value = cross_entropy_row(row, base, 1.0 / f32(dims.m));
        }
        default: {}
    }
    row_loss[row] = value;
    row_hits[row] = hits(row, base);
}

@compute @workgroup_size(256)
fn loss_sum(@builtin(local_invocation_index) t: u32) {
    var loss = 0.0;
    var hit = 0.0;
    for (var i = t; i < dims.m; i += SUM_WORKGROUP) {
        loss += row_loss[i];
        hit += row_hits[i];
    }
    partial_losses[t] = loss;
    partial_hits[t] = hit;
    workgroupBarrier();
    for (var stride = SUM_WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if t < stride {
            partial_losses[t] += partial_losses[t + stride];
            partial_hits[t] += partial_hits[t + stride];
        }
        workgroupBarrier();
    }
    if t == 0u {
        stats[0] = dims.scale * partial_losses[0];
        stats[1] += partial_losses[0];
        stats[2] += partial_hits[0];
    }
}
