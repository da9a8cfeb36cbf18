// sgd_update: parameters ← parameters − learning_rate · grads over the whole flat parameter buffer in one
// dispatch. The learning rate lives in a buffer so the host can change it without rebuilding anything.

struct Dims {
    m: u32, // element count
    k: u32,
    n: u32,
    code: u32,
    slope: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

const WORKGROUP: u32 = 64u;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read_write> parameters: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read> learning_rate: array<f32>;

@compute @workgroup_size(64)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if i >= dims.m {
        return;
    }
    parameters[i] = parameters[i] - learning_rate[0] * grads[i];
}
