// Dense-layer matrix products on row-major f32 matrices.
//   matmul_bias_act: product[m, n] = act(lhs[m, k] · rhs[k, n] + bias[n])   (forward)
//   matmul_nt:       product[m, n] = lhs[m, k] · rhs[n, k]ᵀ                 (dX = dY · Wᵀ)
//   matmul_tn:       product[m, n] = lhs[k, m]ᵀ · rhs[k, n]                 (dW = Xᵀ · dY)
// One invocation computes one output element; shapes come in `dims`, so one pipeline serves every layer.

struct Dims {
    m: u32,
    k: u32,
    n: u32,
    code: u32,  // activation (ACT_*) for matmul_bias_act
    slope: f32, // leaky ReLU negative-side slope
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

const ACT_LINEAR: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;
const ACT_TANH: u32 = 4u;
// tanh(9.1) already rounds to 1.0 in f32; the clamp keeps exp-based tanh implementations away from inf / inf.
const TANH_CLAMP: f32 = 15.0;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> lhs: array<f32>;
@group(0) @binding(2) var<storage, read> rhs: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> product: array<f32>;

// The same formulas, and the same `x > 0` test at the ReLU kink, as Activation::apply in src/activation.rs.
fn activate(x: f32) -> f32 {
    switch dims.code {
        case ACT_RELU: {
            return select(0.0, x, x > 0.0);
        }
        case ACT_LEAKY_RELU: {
            return select(dims.slope * x, x, x > 0.0);
        }
        case ACT_SIGMOID: {
            if x >= 0.0 {
                return 1.0 / (1.0 + exp(-x));
            }
            let e = exp(x);
            return e / (1.0 + e);
        }
        case ACT_TANH: {
            return tanh(clamp(x, -TANH_CLAMP, TANH_CLAMP));
        }
        default: {
            return x;
        }
    }
}

@compute @workgroup_size(8, 8)
fn matmul_bias_act(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if row >= dims.m || col >= dims.n {
        return;
    }
    var sum = 0.0;
    for (var p = 0u; p < dims.k; p++) {
        sum += lhs[row * dims.k + p] * rhs[p * dims.n + col];
    }
    product[row * dims.n + col] = activate(sum + bias[col]);
}

@compute @workgroup_size(8, 8)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if row >= dims.m || col >= dims.n {
        return;
    }
    var sum = 0.0;
    for (var p = 0u; p < dims.k; p++) {
        sum += lhs[row * dims.k + p] * rhs[col * dims.k + p];
    }
    product[row * dims.n + col] = sum;
}

@compute @workgroup_size(8, 8)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if row >= dims.m || col >= dims.n {
        return;
    }
    var sum = 0.0;
    for (var p = 0u; p < dims.k; p++) {
        sum += lhs[p * dims.m + row] * rhs[p * dims.n + col];
    }
    product[row * dims.n + col] = sum;
}
