// Data layout (src/ops/layout.rs).
//   transpose_batched: output[b, c, r] = input[b, r, c] for b < batch, r < m, c < n: between a matrix product's
//                      rows-by-channels result and NCHW, both ways

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(64)
fn transpose_batched(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let matrix = dims.m * dims.n;
    if (i >= dims.batch * matrix) {
        return;
    }
    let b = i / matrix;
    let c = (i % matrix) / dims.m;
    let r = (i % matrix) % dims.m;
    output[i] = input[b * matrix + r * dims.n + c];
}
