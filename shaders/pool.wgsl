// Pooling over NCHW images without padding (src/ops/pool.rs); windows of kernel_h x kernel_w every `step`.
//   max_pool:          output[n, c, oy, ox] = the window's maximum
//   max_pool_backward: grad_input[n, c, y, x] = Σ grad_output over the windows whose first maximum (in
//                      row-major order, as PyTorch) is (y, x)
//   avg_pool:          output = the window's sum / (kernel_h · kernel_w)
//   avg_pool_backward: grad_input[n, c, y, x] = Σ grad_output / (kernel_h · kernel_w) over the windows holding
//                      (y, x)
// The backward passes gather over the windows that hold each input value, so no two invocations write one.

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> grad_output: array<f32>;

// The flat index of window (oy, ox)'s first maximum in plane `base` of the input.
fn first_max(base: u32, oy: u32, ox: u32) -> u32 {
    var best = base + (oy * dims.step) * dims.width + ox * dims.step;
    for (var ky = 0u; ky < dims.kernel_h; ky++) {
        for (var kx = 0u; kx < dims.kernel_w; kx++) {
            let at = base + (oy * dims.step + ky) * dims.width + ox * dims.step + kx;
            if (input[at] > input[best]) {
                best = at;
            }
        }
    }
    return best;
}

@compute @workgroup_size(64)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let positions = dims.out_height * dims.out_width;
    if (i >= dims.batch * dims.channels * positions) {
        return;
    }
    let base = (i / positions) * dims.height * dims.width;
    output[i] = input[first_max(base, (i % positions) / dims.out_width, (i % positions) % dims.out_width)];
}

@compute @workgroup_size(64)
fn avg_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let positions = dims.out_height * dims.out_width;
    if (i >= dims.batch * dims.channels * positions) {
        return;
    }
    let base = (i / positions) * dims.height * dims.width;
    let oy = (i % positions) / dims.out_width;
    let ox = (i % positions) % dims.out_width;
    var sum = 0.0;
    for (var ky = 0u; ky < dims.kernel_h; ky++) {
        for (var kx = 0u; kx < dims.kernel_w; kx++) {
            sum += input[base + (oy * dims.step + ky) * dims.width + ox * dims.step + kx];
        }
    }
    output[i] = sum / f32(dims.kernel_h * dims.kernel_w);
}

// The windows holding index y along a dimension of `size` window positions: [first, last], empty when
// first > last.
fn windows(y: u32, kernel: u32, size: u32) -> vec2<u32> {
    var first = 0u;
    if (y + 1u > kernel) {
        first = (y + 1u - kernel + dims.step - 1u) / dims.step;
    }
    let last = min(y / dims.step, size - 1u);
    return vec2<u32>(first, last);
}

@compute @workgroup_size(64)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let plane = dims.height * dims.width;
    if (i >= dims.batch * dims.channels * plane) {
        return;
    }
    let base = (i / plane) * plane;
    let out_base = (i / plane) * dims.out_height * dims.out_width;
    let rows = windows((i % plane) / dims.width, dims.kernel_h, dims.out_height);
    let cols = windows((i % plane) % dims.width, dims.kernel_w, dims.out_width);
    var sum = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        for (var ox = cols.x; ox <= cols.y; ox++) {
            if (first_max(base, oy, ox) == i) {
                sum += grad_output[out_base + oy * dims.out_width + ox];
            }
        }
    }
    output[i] = sum;
}

@compute @workgroup_size(64)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let plane = dims.height * dims.width;
    if (i >= dims.batch * dims.channels * plane) {
        return;
    }
    let out_base = (i / plane) * dims.out_height * dims.out_width;
    let rows = windows((i % plane) / dims.width, dims.kernel_h, dims.out_height);
    let cols = windows((i % plane) % dims.width, dims.kernel_w, dims.out_width);
    var sum = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        for (var ox = cols.x; ox <= cols.y; ox++) {
            sum += grad_output[out_base + oy * dims.out_width + ox];
        }
    }
    output[i] = sum / f32(dims.kernel_h * dims.kernel_w);
}
