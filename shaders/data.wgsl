// Mini-batches gathered on the device from a training set held there, so an epoch needs no upload per step.
//   gather_rows:    output[r, c] = source[order[cursor + r] * n + c] for r < m (zeros past either end)
//   advance_cursor: one invocation: cursor += m
// The host writes `order` and `cursor` as f32 buffers holding u32 bit patterns; they are read here as u32,
// so no index ever passes through a float register.

@group(0) @binding(1) var<storage, read> source: array<f32>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<storage, read> cursor: array<u32>;
@group(0) @binding(5) var<storage, read_write> cursor_rw: array<u32>;

@compute @workgroup_size(64)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    if (i >= dims.m * dims.n) {
        return;
    }
    let position = cursor[0] + i / dims.n;
    var value = 0.0;
    if (position < dims.stride) {
        let row = order[position];
        if (row < dims.k) {
            value = source[row * dims.n + i % dims.n];
        }
    }
    output[i] = value;
}

@compute @workgroup_size(1)
fn advance_cursor() {
    cursor_rw[0] = cursor_rw[0] + dims.m;
}
