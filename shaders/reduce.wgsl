// bias_grad: column sums of grad_output[rows, n cols], each column summed over rows in order, so the
// result is the same on every run (no float atomics). Many rows run as several dispatches over windows
// [begin, begin + m) of rows, each continuing the sums the last one left (FLAG_ACCUMULATE), because
// llvmpipe ends an invocation after 65535 loop iterations.

struct Dims {
    m: u32,  // rows in this window
    k: u32,
    n: u32,
    code: u32,
    slope: f32,
    scale: f32,
    begin: u32,  // first index of this window along the summed dimension
    stride: u32,  // full length of the summed dimension
    flags: u32,  // FLAG_*
    rhs_begin: u32,
    window_offset: u32,
    window_stride: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> grad_output: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_bias: array<f32>;

const WORKGROUP: u32 = 64u;
const FLAG_ACCUMULATE: u32 = 1u;

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
