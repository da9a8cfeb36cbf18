// Joined before every other shader file when its pipeline is made (src/ops/mod.rs: `PRELUDE`), so the
// shape uniform and the codes shared with Rust are written once. A unit test in src/ops/launch.rs checks
// each field and code against the Rust side; tests/shaders.rs validates every file joined to this one.

// The per-kernel shape uniform (Rust: `ops::launch::Dims`); each entry point reads the fields it needs.
struct Dims {
    m: u32,
    k: u32,              // length of this window of the summed dimension
    n: u32,
    code: u32,           // ACT_* for activations, LOSS_* for losses
    slope: f32,          // leaky ReLU negative-side slope
    scale: f32,
    begin: u32,          // first index of this window along the summed dimension
    stride: u32,         // full length of the summed dimension
    flags: u32,          // FLAG_*
    rhs_begin: u32,      // matmul_bias_act: the summed index where the bound window of rhs starts
    window_offset: u32,  // matmul_nt: first output column; matmul_tn: first lhs column
    window_stride: u32,  // matmul_nt: full output width; matmul_tn: full lhs width
    batch: u32,          // image ops: samples, then the input's channels x height x width (NCHW)
    channels: u32,
    height: u32,
    width: u32,
    out_height: u32,     // the output's height and width
    out_width: u32,
    kernel_h: u32,       // the kernel's or pooling window's size, stride and zero padding per side
    kernel_w: u32,
    step: u32,
    padding: u32,
}

// The flat index of a one-dimensional dispatch spread over x and y (see `flat_groups` in Rust).
fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

@group(0) @binding(0) var<uniform> dims: Dims;

// Activation codes (Rust: `Activation::code`).
const ACT_LINEAR: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;
const ACT_TANH: u32 = 4u;
const ACT_SOFTMAX: u32 = 5u;

// Loss codes (Rust: `Loss::code`).
const LOSS_SSE: u32 = 0u;
const LOSS_MSE: u32 = 1u;
const LOSS_BCE: u32 = 2u;
const LOSS_CE: u32 = 3u;

// Window flags (Rust: `ops::launch::FLAG_*`): continue the previous window's sum; the last window;
// loss_sum scaled by the step's class-weight sum.
const FLAG_ACCUMULATE: u32 = 1u;
const FLAG_LAST: u32 = 2u;
const FLAG_WEIGHTED: u32 = 4u;

// Invocations per workgroup of the one-dimensional kernels (Rust: `ops::launch::WORKGROUP`).
const WORKGROUP: u32 = 64u;

// tanh(9.1) already rounds to 1.0 in f32; the clamp keeps exp-based tanh implementations away from inf / inf
// (Rust: `TANH_CLAMP`).
const TANH_CLAMP: f32 = 15.0;

// The activation `dims.code` names, as `Activation::apply` computes it in src/activation.rs.
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
