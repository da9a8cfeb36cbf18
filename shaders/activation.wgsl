// Activations on their own, their backward passes and the row-wise softmax, on row-major [m, n] matrices.
//   act_forward:      values ← f(values), where no product applied f in its epilogue
//   act_backward:     grad ← grad ⊙ f'(output), f' written in terms of the output y = f(x)
//   softmax_backward: per row, grad_i ← y_i (grad_i − Σ_j grad_j y_j)
//   softmax:          per row, values ← exp(values − max) / Σ exp(values − max)

@group(0) @binding(1) var<storage, read> output: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> values: array<f32>;

// Same formulas as Activation::derivative_from_output in src/activation.rs. At the ReLU kink (y = 0) the
// derivative is the negative side's: 0 for ReLU, the slope for leaky ReLU.
fn derivative(y: f32) -> f32 {
    switch dims.code {
        case ACT_RELU: {
            return select(0.0, 1.0, y > 0.0);
        }
        case ACT_LEAKY_RELU: {
            return select(dims.slope, 1.0, y > 0.0);
        }
        case ACT_SIGMOID: {
            return y * (1.0 - y);
        }
        case ACT_TANH: {
            return 1.0 - y * y;
        }
        default: {
            return 1.0;
        }
    }
}

// Flattened index of a 1-D job dispatched as a 2-D grid (the host splits past 65535 workgroups).
@compute @workgroup_size(64)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= dims.m * dims.n {
        return;
    }
    values[i] = activate(values[i]);
}

@compute @workgroup_size(64)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= dims.m * dims.n {
        return;
    }
    grad[i] = grad[i] * derivative(output[i]);
}

@compute @workgroup_size(64)
fn softmax_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= dims.m {
        return;
    }
    let base = row * dims.n;
    var dot = 0.0;
    for (var j = 0u; j < dims.n; j++) {
        dot += grad[base + j] * output[base + j];
    }
    for (var j = 0u; j < dims.n; j++) {
        grad[base + j] = output[base + j] * (grad[base + j] - dot);
    }
}

@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= dims.m {
        return;
    }
    let base = row * dims.n;
    var max_value = values[base];
    for (var j = 1u; j < dims.n; j++) {
        max_value = max(max_value, values[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < dims.n; j++) {
        let e = exp(values[base + j] - max_value);
        values[base + j] = e;
        sum += e;
    }
    for (var j = 0u; j < dims.n; j++) {
        values[base + j] = values[base + j] / sum;
    }
}
