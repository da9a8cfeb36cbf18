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
// samples then rows then columns in order (each loop shorter than llvmpipe's limit).
@compute @workgroup_size(64)
fn channel_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let c = gid.x + gid.y * groups.x * WORKGROUP;
    if c >= dims.channels {
        return;
    }
    var sum = 0.0;
    for (var n = 0u; n < dims.batch; n++) {
        let plane = (n * dims.channels + c) * dims.height * dims.width;
        for (var y = 0u; y < dims.height; y++) {
            for (var x = 0u; x < dims.width; x++) {
                sum += grad_output[plane + y * dims.width + x];
            }
        }
    }
    grad_bias[c] = sum;
}
