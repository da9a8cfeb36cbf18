// Batch normalisation over values laid out [batch, channels, spatial] (spatial = H·W for images, 1 for
// rows of features), one channel's statistics over its batch·spatial values (src/ops/norm.rs).
//   batch_norm_stats:         stats[c] = mean, stats[second + c] = biased variance (two passes)
//   batch_norm_apply:         output = gamma[c] · (input − mean[c]) / sqrt(variance[c] + eps) + beta[c]
//   batch_norm_running:       running mean and variance move toward the batch's by `momentum` (the
//                             variance unbiased, as PyTorch), and the batch count goes up by one
//   batch_norm_backward_sums: stats[c] = Σ g·x̂ (gamma's gradient), stats[second + c] = Σ g (beta's)
//   batch_norm_backward:      grad_input = gamma·inv_std·(g − Σg/M − x̂·Σ(g·x̂)/M), M = batch·spatial
// The sums run per channel in one workgroup: a fixed split over its invocations, then a tree.
//   dims: batch, channels, width = spatial, scale = eps, slope = momentum, window_offset = `second`,
//   stride = where the batch count sits in `stats` (batch_norm_running)

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> grad_output: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> variance: array<f32>;
@group(0) @binding(6) var<storage, read> gamma: array<f32>;
@group(0) @binding(7) var<storage, read> beta: array<f32>;
@group(0) @binding(8) var<storage, read_write> stats: array<f32>;

const NORM_WORKGROUP: u32 = 256u;
var<workgroup> partial: array<f32, NORM_WORKGROUP>;

// The flat index of value j (of batch·spatial) of channel c.
fn at(c: u32, j: u32) -> u32 {
    return ((j / dims.width) * dims.channels + c) * dims.width + j % dims.width;
}

// The workgroup's `partial` values summed in a fixed tree; every invocation gets the total.
fn tree_sum(t: u32) -> f32 {
    workgroupBarrier();
    for (var half = NORM_WORKGROUP / 2u; half > 0u; half /= 2u) {
        if (t < half) {
            partial[t] += partial[t + half];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn batch_norm_stats(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let c = group.x;
    let t = local.x;
    let count = dims.batch * dims.width;
    var sum = 0.0;
    for (var j = t; j < count; j += NORM_WORKGROUP) {
        sum += input[at(c, j)];
    }
    partial[t] = sum;
    let m = tree_sum(t) / f32(count);
    var squares = 0.0;
    for (var j = t; j < count; j += NORM_WORKGROUP) {
        let d = input[at(c, j)] - m;
        squares += d * d;
    }
    partial[t] = squares;
    let v = tree_sum(t) / f32(count);
    if (t == 0u) {
        stats[c] = m;
        stats[dims.window_offset + c] = v;
    }
}

@compute @workgroup_size(64)
fn batch_norm_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= dims.batch * dims.channels * dims.width) {
        return;
    }
    let c = (i / dims.width) % dims.channels;
    output[i] = gamma[c] * (input[i] - mean[c]) / sqrt(variance[c] + dims.scale) + beta[c];
}

@compute @workgroup_size(64)
fn batch_norm_running(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let c = flat_index(gid, groups);
    if (c >= dims.channels) {
        return;
    }
    let count = f32(dims.batch * dims.width);
    let unbiased = variance[c] * count / max(count - 1.0, 1.0);
    stats[c] = (1.0 - dims.slope) * stats[c] + dims.slope * mean[c];
    stats[dims.window_offset + c] = (1.0 - dims.slope) * stats[dims.window_offset + c] + dims.slope * unbiased;
    if (c == 0u) {
        stats[dims.stride] = stats[dims.stride] + 1.0;
    }
}

@compute @workgroup_size(256)
fn batch_norm_backward_sums(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let c = group.x;
    let t = local.x;
    let count = dims.batch * dims.width;
    let inv_std = 1.0 / sqrt(variance[c] + dims.scale);
    var g_sum = 0.0;
    var gx_sum = 0.0;
    for (var j = t; j < count; j += NORM_WORKGROUP) {
        let i = at(c, j);
        g_sum += grad_output[i];
        gx_sum += grad_output[i] * (input[i] - mean[c]) * inv_std;
    }
    partial[t] = gx_sum;
    let gx = tree_sum(t);
    partial[t] = g_sum;
    let g = tree_sum(t);
    if (t == 0u) {
        stats[c] = gx;
        stats[dims.window_offset + c] = g;
    }
}

@compute @workgroup_size(64)
fn batch_norm_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= dims.batch * dims.channels * dims.width) {
        return;
    }
    let c = (i / dims.width) % dims.channels;
    let count = f32(dims.batch * dims.width);
    let inv_std = 1.0 / sqrt(variance[c] + dims.scale);
    let x_hat = (input[i] - mean[c]) * inv_std;
    // `beta` holds the two sums: Σ g·x̂ at c, Σ g at window_offset + c.
    let sum_gx = beta[c];
    let sum_g = beta[dims.window_offset + c];
    output[i] = gamma[c] * inv_std * (grad_output[i] - sum_g / count - x_hat * sum_gx / count);
}
