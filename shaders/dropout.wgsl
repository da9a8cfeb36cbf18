// Inverted dropout (src/ops/dropout.rs): output[i] = input[i] · scale where element i is kept, else 0.
// Element i of a step is kept when hash(i, step, seed) >= threshold, a counter-based draw that the CPU
// computes bit for bit the same, so a run gives the same masks on every device. The backward pass is the
// same op on the gradients: the same mask, the same scale.
//   dims.m: elements; dims.k: index of the step count in `hyper`; dims.n: the layer's seed;
//   dims.stride: the threshold (0 keeps everything: evaluation); dims.scale: 1 / (1 − p) (1 in evaluation)

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> hyper: array<f32>;

// Chris Wellons' lowbias32 integer hash (Rust: `ops::dropout::hash`).
fn hash(value: u32) -> u32 {
    var x = value;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

@compute @workgroup_size(64)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if (i >= dims.m) {
        return;
    }
    let step = u32(hyper[dims.k]);
    let draw = hash(i ^ hash(step ^ hash(dims.n)));
    output[i] = select(0.0, input[i] * dims.scale, draw >= dims.stride);
}
