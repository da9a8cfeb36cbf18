// Convolution straight from NCHW to NCHW (src/ops/conv2d.rs), one invocation an output value. The weights
// are stored [patch, out] with the patch index kk = (c, ky, kx) in PyTorch's order; dims.n is the number
// of output channels, the image fields describe the input and the window.
//   conv2d_forward:          output[n, o, oy, ox] = activate(bias[o] + Σ_(c, ky, kx) input · weights)
//   conv2d_backward_input:   output[n, c, y, x] = Σ grad_output[n, o, oy, ox] · weights over the windows
//                            that read (y, x)
//   conv2d_backward_weights: output[kk, o] = Σ_(n, oy, ox) grad_output[n, o, oy, ox] · input at (kk, oy, ox)
// llvmpipe ends an invocation after 65535 loop iterations in total: the weight gradient's sum over
// batch × positions therefore runs in windows of its (n, oy, ox) terms, each dispatch continuing the last
// one's sums (FLAG_ACCUMULATE); the other two sum over channels × kernel, far below the limit.

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
@group(0) @binding(5) var<storage, read> grad_output: array<f32>;

// The input row or column that output index `o` reads at kernel offset `k`, or -1 over the padding.
fn image_index(o: u32, k: u32, size: u32) -> i32 {
    let i = i32(o * dims.step + k) - i32(dims.padding);
    return select(-1, i, i >= 0 && i < i32(size));
}

@compute @workgroup_size(64)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let positions = dims.out_height * dims.out_width;
    if (i >= dims.batch * dims.n * positions) {
        return;
    }
    let ox = i % dims.out_width;
    let oy = (i / dims.out_width) % dims.out_height;
    let o = (i / positions) % dims.n;
    let n = i / (positions * dims.n);
    var sum = 0.0;
    for (var c = 0u; c < dims.channels; c++) {
        let plane = (n * dims.channels + c) * dims.height;
        for (var ky = 0u; ky < dims.kernel_h; ky++) {
            let y = image_index(oy, ky, dims.height);
            if (y < 0) {
                continue;
            }
            for (var kx = 0u; kx < dims.kernel_w; kx++) {
                let x = image_index(ox, kx, dims.width);
                if (x < 0) {
                    continue;
                }
                let kk = (c * dims.kernel_h + ky) * dims.kernel_w + kx;
                sum += input[(plane + u32(y)) * dims.width + u32(x)] * weights[kk * dims.n + o];
            }
        }
    }
    output[i] = activate(sum + bias[o]);
}

@compute @workgroup_size(64)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let plane = dims.height * dims.width;
    if (i >= dims.batch * dims.channels * plane) {
        return;
    }
    let x = i % dims.width;
    let y = (i / dims.width) % dims.height;
    let c = (i / plane) % dims.channels;
    let n = i / (plane * dims.channels);
    var sum = 0.0;
    for (var o = 0u; o < dims.n; o++) {
        let channel = (n * dims.n + o) * dims.out_height;
        for (var ky = 0u; ky < dims.kernel_h; ky++) {
            let sy = i32(y + dims.padding) - i32(ky);
            if (sy < 0 || sy % i32(dims.step) != 0 || u32(sy) / dims.step >= dims.out_height) {
                continue;
            }
            let oy = u32(sy) / dims.step;
            for (var kx = 0u; kx < dims.kernel_w; kx++) {
                let sx = i32(x + dims.padding) - i32(kx);
                if (sx < 0 || sx % i32(dims.step) != 0 || u32(sx) / dims.step >= dims.out_width) {
                    continue;
                }
                let ox = u32(sx) / dims.step;
                let kk = (c * dims.kernel_h + ky) * dims.kernel_w + kx;
                sum += grad_output[(channel + oy) * dims.out_width + ox] * weights[kk * dims.n + o];
            }
        }
    }
    output[i] = sum;
}

@compute @workgroup_size(64)
fn conv2d_backward_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let kernel = dims.kernel_h * dims.kernel_w;
    if (i >= dims.channels * kernel * dims.n) {
        return;
    }
    let o = i % dims.n;
    let kk = i / dims.n;
    let c = kk / kernel;
    let ky = (kk % kernel) / dims.kernel_w;
    let kx = kk % dims.kernel_w;
    // This window's terms [begin, begin + m) of the (n, oy, ox) positions, in that order, one loop.
    let positions = dims.out_height * dims.out_width;
    var n = dims.begin / positions;
    var oy = (dims.begin % positions) / dims.out_width;
    var ox = dims.begin % dims.out_width;
    var sum = select(0.0, output[i], (dims.flags & FLAG_ACCUMULATE) != 0u);
    for (var t = 0u; t < dims.m; t++) {
        let y = image_index(oy, ky, dims.height);
        let x = image_index(ox, kx, dims.width);
        if (y >= 0 && x >= 0) {
            sum += grad_output[((n * dims.n + o) * dims.out_height + oy) * dims.out_width + ox]
                * input[((n * dims.channels + c) * dims.height + u32(y)) * dims.width + u32(x)];
        }
        ox++;
        if (ox == dims.out_width) {
            ox = 0u;
            oy++;
            if (oy == dims.out_height) {
                oy = 0u;
                n++;
            }
        }
    }
    output[i] = sum;
}
