// Convolution as a matrix product over NCHW images (src/ops/conv.rs). A patch row p = (n, oy, ox) of the
// im2col matrix holds kk = (c, ky, kx) in that order, the order of PyTorch's weight [out, c, ky, kx].
//   im2col: cols[p, kk] = input[n, c, oy·step − padding + ky, ox·step − padding + kx], 0 outside the image
//   col2im: grad_input[n, c, y, x] = Σ grad_cols[p, kk] over the patches that read (y, x), in row-major order
//           of the patch positions (ky and kx counting down), as the CPU sums (a gather: no two invocations
//           write one value)

@group(0) @binding(1) var<storage, read> source: array<f32>;
@group(0) @binding(2) var<storage, read_write> destination: array<f32>;

@compute @workgroup_size(64)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let kernel = dims.kernel_h * dims.kernel_w;
    let patch_len = dims.channels * kernel;
    let positions = dims.out_height * dims.out_width;
    if (i >= dims.batch * positions * patch_len) {
        return;
    }
    let p = i / patch_len;
    let kk = i % patch_len;
    let n = p / positions;
    let oy = (p % positions) / dims.out_width;
    let ox = (p % positions) % dims.out_width;
    let c = kk / kernel;
    let ky = (kk % kernel) / dims.kernel_w;
    let kx = (kk % kernel) % dims.kernel_w;
    let y = i32(oy * dims.step + ky) - i32(dims.padding);
    let x = i32(ox * dims.step + kx) - i32(dims.padding);
    var value = 0.0;
    if (y >= 0 && y < i32(dims.height) && x >= 0 && x < i32(dims.width)) {
        value = source[((n * dims.channels + c) * dims.height + u32(y)) * dims.width + u32(x)];
    }
    destination[i] = value;
}

@compute @workgroup_size(64)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let plane = dims.height * dims.width;
    if (i >= dims.batch * dims.channels * plane) {
        return;
    }
    let x = i % dims.width;
    let y = (i / dims.width) % dims.height;
    let c = (i / plane) % dims.channels;
    let n = i / (plane * dims.channels);
    let patch_len = dims.channels * dims.kernel_h * dims.kernel_w;
    var sum = 0.0;
    for (var ty = 0u; ty < dims.kernel_h; ty++) {
        let ky = dims.kernel_h - 1u - ty;
        let sy = i32(y + dims.padding) - i32(ky);
        if (sy < 0 || sy % i32(dims.step) != 0 || u32(sy) / dims.step >= dims.out_height) {
            continue;
        }
        let oy = u32(sy) / dims.step;
        for (var tx = 0u; tx < dims.kernel_w; tx++) {
            let kx = dims.kernel_w - 1u - tx;
            let sx = i32(x + dims.padding) - i32(kx);
            if (sx < 0 || sx % i32(dims.step) != 0 || u32(sx) / dims.step >= dims.out_width) {
                continue;
            }
            let ox = u32(sx) / dims.step;
            let p = (n * dims.out_height + oy) * dims.out_width + ox;
            sum += source[p * patch_len + (c * dims.kernel_h + ky) * dims.kernel_w + kx];
        }
    }
    destination[i] = sum;
}
