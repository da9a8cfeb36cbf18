// bias_grad: column sums of grad_output[rows, n cols], each column summed over rows in order, so the
// result is the same on every run (no float atomics). Many rows run as several dispatches over windows
// [begin, begin + m) of rows, each continuing the sums the last one left (FLAG_ACCUMULATE), because
// llvmpipe ends an invocation after 65535 loop iterations.

@group(0) @binding(1) var<storage, read> grad_output: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_bias: array<f32>;

// Columns past 65535 workgroups spill into y: col = gid.x + gid.y · (workgroups in x) · 64.
@compute @workgroup_size(64)
fn bias_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let col = gid.x + gid.y * groups.x * WORKGROUP;
    if col >= dims.n {
        return;
    }
    var sum = select(0.0, grad_bias[col], (dims.flags & FLAG_ACCUMULATE) != 0u);
    for (var row = dims.begin; row < dims.begin + dims.m; row++) {
        sum += grad_output[row * dims.n + col];
    }
    grad_bias[col] = sum;
}

// channel_sum: grad_bias[c] = Σ grad_output[n, c, y, x] over an NCHW gradient, one invocation a channel,
// samples then positions in order. Like bias_grad, long sums run as windows [begin, begin + m) of the
// (n, position) terms, each continuing the last one's sums, to stay inside llvmpipe's loop limit.
@compute @workgroup_size(64)
fn channel_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let c = gid.x + gid.y * groups.x * WORKGROUP;
    if c >= dims.channels {
        return;
    }
    let positions = dims.height * dims.width;
    var n = dims.begin / positions;
    var p = dims.begin % positions;
    var sum = select(0.0, grad_bias[c], (dims.flags & FLAG_ACCUMULATE) != 0u);
    for (var t = 0u; t < dims.m; t++) {
        sum += grad_output[(n * dims.channels + c) * positions + p];
        p++;
        if p == positions {
            p = 0u;
            n++;
        }
    }
    grad_bias[c] = sum;
}
