// Loss value and gradient for a batch of m rows and n outputs.
//   loss_grad: one invocation per row writes row_loss[row] (unscaled) and the row's gradient.
//     sse, mse: prediction is the activated output a;  ∂L/∂a = 2 (a − y), divided by m·n for mse
//     bce:      prediction is the logit z;  L = max(z, 0) − z·y + ln(1 + e^−|z|),  ∂L/∂z = (σ(z) − y) / (m·n)
//     ce:       prediction is the logit row z, target the class index;
//               L = logsumexp(z) − z_class,  ∂L/∂z = (softmax(z) − onehot) / m
//   Rows wider than the host's window (sse, mse, bce only) run as several dispatches over column windows
//   [begin, begin + n) of rows `stride` wide, each continuing the row's sums (FLAG_ACCUMULATE), because
//   llvmpipe ends an invocation after 65535 loop iterations.
//   loss_grad also writes row_hits[row], the row's correct predictions (same rules as Loss::row_hits):
//     ce: first maximum logit == class;  bce: outputs with (z > 0) == (y > 0.5);
//     sse, mse: (a > 0.5) == (y > 0.5) for one output, first maximum of a == first maximum of y for several
//     (rows of up to one window, 16384 outputs; wider rows count none).
//   loss_sum: one workgroup sums row_loss and row_hits in a fixed order; stats[0] = scale · Σ row_loss (the
//     step's loss); running sums over an epoch: stats[1] += Σ row_loss, stats[2] += Σ row_hits,
//     stats[3] += 1 (steps); stats[4], while 0, becomes the step count of the first non-finite step loss.
//     With FLAG_WEIGHTED the scale is 1 / stats[5], the step's class-weight sum.
//   class_weight_sum: one workgroup; stats[5] = D = Σ_i class_weights[target_i], stats[6] += D.
//   cross_entropy_grad: torch's CrossEntropyLoss(weight, label_smoothing = ε in dims.scale), mean over D:
//     ℓ_c = logsumexp(z) − z_c,  row_loss = (1 − ε) w_y ℓ_y + (ε / n) Σ_c w_c ℓ_c,
//     ∂/∂z_j = (p_j ((1 − ε) w_y + (ε / n) Σ_c w_c) − (1 − ε) w_y [j = y] − (ε / n) w_j) / D.

const SUM_WORKGROUP: u32 = 256u;

@group(0) @binding(1) var<storage, read> prediction: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> row_hits: array<f32>;
@group(0) @binding(7) var<storage, read> class_weights: array<f32>;

const STATS_WEIGHT_SUM: u32 = 5u;
const STATS_EPOCH_WEIGHT_SUM: u32 = 6u;

var<workgroup> partial_losses: array<f32, SUM_WORKGROUP>;
var<workgroup> partial_hits: array<f32, SUM_WORKGROUP>;

// Exponent bits all ones means infinity or NaN (WGSL has no isnan, and `x != x` may be folded away).
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// The window of columns [begin, begin + n) of row `row` (rows are `stride` wide), its running loss `sum`.
fn squared_error_window(row: u32, grad_scale: f32, sum_so_far: f32) -> f32 {
    var sum = sum_so_far;
    for (var j = dims.begin; j < dims.begin + dims.n; j++) {
        let i = row * dims.stride + j;
        let diff = prediction[i] - targets[i];
        sum += diff * diff;
        grad[i] = grad_scale * diff;
    }
    return sum;
}

fn binary_cross_entropy_window(row: u32, grad_scale: f32, sum_so_far: f32) -> f32 {
    var sum = sum_so_far;
    for (var j = dims.begin; j < dims.begin + dims.n; j++) {
        let i = row * dims.stride + j;
        let z = prediction[i];
        let y = targets[i];
        sum += max(z, 0.0) - z * y + log(1.0 + exp(-abs(z)));
        grad[i] = grad_scale * (sigmoid(z) - y);
    }
    return sum;
}

// Needs the whole row in one window (the host checks it fits the adapter's loop budget).
fn cross_entropy_row(row: u32, grad_scale: f32) -> f32 {
    // Negative indices saturate to 0 as in Rust's `as usize`; an index past the classes yields NaN.
    let label = u32(targets[row]);
    let base = row * dims.stride;
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

// Index of the first maximum of a whole row of prediction (from_target false) or targets (true).
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

// Correct predictions in this window. Comparing first maxima needs the whole row: a row split into
// windows (wider than the host's window) counts no such hits.
fn hits(row: u32) -> f32 {
    let base = row * dims.stride;
    let whole_row = dims.begin == 0u && dims.n == dims.stride;
    switch dims.code {
        case LOSS_CE: {
            return select(0.0, 1.0, first_max(base, false) == u32(targets[row]));
        }
        case LOSS_BCE: {
            var count = 0.0;
            for (var j = dims.begin; j < dims.begin + dims.n; j++) {
                count += select(0.0, 1.0, (prediction[base + j] > 0.0) == (targets[base + j] > 0.5));
            }
            return count;
        }
        default: {
            if dims.stride == 1u {
                return select(0.0, 1.0, (prediction[base] > 0.5) == (targets[base] > 0.5));
            }
            if !whole_row {
                return 0.0;
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
    let accumulate = (dims.flags & FLAG_ACCUMULATE) != 0u;
    let loss_so_far = select(0.0, row_loss[row], accumulate);
    let hits_so_far = select(0.0, row_hits[row], accumulate);
    let count = f32(dims.m * dims.stride);
    var value = 0.0;
    switch dims.code {
        case LOSS_SSE: {
            value = squared_error_window(row, 2.0, loss_so_far);
        }
        case LOSS_MSE: {
            value = squared_error_window(row, 2.0 / count, loss_so_far);
        }
        case LOSS_BCE: {
            value = binary_cross_entropy_window(row, 1.0 / count, loss_so_far);
        }
        case LOSS_CE: {
            value = cross_entropy_row(row, 1.0 / f32(dims.m));
        }
        default: {}
    }
    row_loss[row] = value;
    row_hits[row] = hits_so_far + hits(row);
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
        let weighted = (dims.flags & FLAG_WEIGHTED) != 0u;
        let scale = select(dims.scale, 1.0 / stats[STATS_WEIGHT_SUM], weighted);
        let step_loss = scale * partial_losses[0];
        stats[0] = step_loss;
        stats[1] += partial_losses[0];
        stats[2] += partial_hits[0];
        stats[3] += 1.0;
        if stats[4] == 0.0 && !is_finite(step_loss) {
            stats[4] = stats[3];
        }
    }
}

@compute @workgroup_size(256)
fn class_weight_sum(@builtin(local_invocation_index) t: u32) {
    var sum = 0.0;
    for (var i = t; i < dims.m; i += SUM_WORKGROUP) {
        // An index past the weights counts as NaN, as the row's loss will be.
        let label = u32(targets[i]);
        sum += select(bitcast<f32>(0x7fc00000u), class_weights[min(label, dims.n - 1u)], label < dims.n);
    }
    partial_losses[t] = sum;
    workgroupBarrier();
    for (var stride = SUM_WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if t < stride {
            partial_losses[t] += partial_losses[t + stride];
        }
        workgroupBarrier();
    }
    if t == 0u {
        stats[STATS_WEIGHT_SUM] = partial_losses[0];
        stats[STATS_EPOCH_WEIGHT_SUM] += partial_losses[0];
    }
}

// Needs the whole row in one window, like cross_entropy_row.
@compute @workgroup_size(64)
fn cross_entropy_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= dims.m {
        return;
    }
    let label = u32(targets[row]);
    let base = row * dims.stride;
    let kept = 1.0 - dims.scale;
    let spread = dims.scale / f32(dims.n);
    var max_z = prediction[base];
    for (var j = 1u; j < dims.n; j++) {
        max_z = max(max_z, prediction[base + j]);
    }
    var sum_exp = 0.0;
    var weighted_z = 0.0;
    var total_weight = 0.0;
    for (var j = 0u; j < dims.n; j++) {
        let z = prediction[base + j];
        sum_exp += exp(z - max_z);
        weighted_z += class_weights[j] * z;
        total_weight += class_weights[j];
    }
    let lse = max_z + log(sum_exp);
    // NaN for an index past the classes, as in cross_entropy_row.
    let w_label = select(bitcast<f32>(0x7fc00000u), class_weights[min(label, dims.n - 1u)], label < dims.n);
    let z_label = prediction[base + min(label, dims.n - 1u)];
    row_loss[row] = kept * w_label * (lse - z_label) + spread * (total_weight * lse - weighted_z);
    let mass = kept * w_label + spread * total_weight;
    let divisor = stats[STATS_WEIGHT_SUM];
    for (var j = 0u; j < dims.n; j++) {
        let p = exp(prediction[base + j] - max_z) / sum_exp;
        let onehot = select(0.0, kept * w_label, j == label);
        grad[base + j] = (p * mass - onehot - spread * class_weights[j]) / divisor;
    }
    row_hits[row] = hits(row);
}
