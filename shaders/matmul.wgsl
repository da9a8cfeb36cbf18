// Dense-layer matrix products on row-major f32 matrices.
//   matmul_bias_act: product[m, n] = act(lhs[m, k] · rhs[k, n] + bias[n])   (forward)
//   matmul_nt:       product[m, n] = lhs[m, k] · rhs[n, k]ᵀ                 (dX = dY · Wᵀ)
//   matmul_tn:       product[m, n] = lhs[k, m]ᵀ · rhs[k, n]                 (dW = Xᵀ · dY)
// One invocation computes one output element; shapes come in `dims`, so one pipeline serves every layer.
// Columns past 65535 workgroups spill into the z dimension: col = gid.x + gid.z · (workgroups in x) · 8.
// Long sums run as several dispatches, each over a window [begin, begin + k) of the summed dimension (full
// length `stride`): llvmpipe ends an invocation after 65535 loop iterations. A window with FLAG_ACCUMULATE
// continues the sum already in `product` (so the order is that of one long sum); FLAG_LAST applies the
// epilogue (bias and activation) and is set on the last window.
// Operands larger than one storage binding are bound in windows too: matmul_bias_act binds rows
// [rhs_begin, rhs_begin + k) of rhs; matmul_nt binds rows of rhs for output columns
// [window_offset, window_offset + n) of an output `window_stride` wide; matmul_tn binds output rows for
// lhs columns [window_offset, window_offset + m) of an lhs `window_stride` wide.

struct Dims {
    m: u32,
    k: u32,  // length of this window of the summed dimension
    n: u32,
    code: u32,  // activation (ACT_*) for matmul_bias_act
    slope: f32,  // leaky ReLU negative-side slope
    scale: f32,
    begin: u32,  // first index of this window along the summed dimension
    stride: u32,  // full length of the summed dimension
    flags: u32,  // FLAG_*
    rhs_begin: u32,     // matmul_bias_act: the summed index where the bound window of rhs starts
    window_offset: u32, // matmul_nt: first output column; matmul_tn: first lhs column (see above)
    window_stride: u32, // matmul_nt: full output width; matmul_tn: full lhs width
}

const ACT_LINEAR: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;
const ACT_TANH: u32 = 4u;
// tanh(9.1) already rounds to 1.0 in f32; the clamp keeps exp-based tanh implementations away from inf / inf.
const TANH_CLAMP: f32 = 15.0;
const TILE: u32 = 8u; // @workgroup_size(8, 8)
const FLAG_ACCUMULATE: u32 = 1u;
const FLAG_LAST: u32 = 2u;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> lhs: array<f32>;
@group(0) @binding(2) var<storage, read> rhs: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> product: array<f32>;

fn column(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.z * groups.x * TILE;
}

// The sum so far: what earlier windows left in `product`, or 0 for the first.
fn start_sum(i: u32) -> f32 {
    return select(0.0, product[i], (dims.flags & FLAG_ACCUMULATE) != 0u);
}

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
fn matmul_bias_act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.y;
    let col = column(gid, groups);
    if row >= dims.m || col >= dims.n {
        return;
    }
    let i = row * dims.n + col;
    var sum = start_sum(i);
    for (var p = dims.begin; p < dims.begin + dims.k; p++) {
        sum += lhs[row * dims.stride + p] * rhs[(p - dims.rhs_begin) * dims.n + col];
    }
    if (dims.flags & FLAG_LAST) != 0u {
        product[i] = activate(sum + bias[col]);
    } else {
        product[i] = sum;
    }
}

@compute @workgroup_size(8, 8)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.y;
    let col = column(gid, groups);
    if row >= dims.m || col >= dims.n {
        return;
    }
    let i = row * dims.window_stride + dims.window_offset + col;
    var sum = start_sum(i);
    for (var p = dims.begin; p < dims.begin + dims.k; p++) {
        sum += lhs[row * dims.stride + p] * rhs[col * dims.stride + p];
    }
    product[i] = sum;
}

@compute @workgroup_size(8, 8)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.y;
    let col = column(gid, groups);
    if row >= dims.m || col >= dims.n {
        return;
    }
    let i = row * dims.n + col;
    var sum = start_sum(i);
    for (var p = dims.begin; p < dims.begin + dims.k; p++) {
        sum += lhs[p * dims.window_stride + dims.window_offset + row] * rhs[p * dims.n + col];
    }
    product[i] = sum;
}
