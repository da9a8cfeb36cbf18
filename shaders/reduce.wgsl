// bias_grad: column sums of grad_output[m rows, n cols], each column summed over rows in order, so the
// result is the same on every run (no float atomics).

struct Dims {
    m: u32,
    k: u32,
    n: u32,
    code: u32,
    slope: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> grad_output: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_bias: array<f32>;

@compute @workgroup_size(64)
fn bias_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if col >= dims.n {
        return;
    }
    var sum = 0.0;
    for (var row = 0u; row < dims.m; row++) {
        sum += grad_output[row * dims.n + col];
    }
    grad_bias[col] = sum;
}
