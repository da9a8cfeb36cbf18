// Parameter updates over the whole flat parameter buffer, one dispatch each, with PyTorch's rules.
// Every rule reads the gradient clipped (see clipped_grad), and all but adamw then add coupled weight decay:
// g = clipped + weight_decay · w.
//   sgd_update:      w ← w − lr · g
//   momentum_update: v ← μ · v + g;  w ← w − lr · v
//   nesterov_update: v ← μ · v + g;  w ← w − lr · (g + μ · v)
//   adam_update:     m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;  w ← w − (lr / bc1) · m / (√v / √bc2 + ε)
//   adamw_update:    w ← w · (1 − lr · wd), then adam_update's rule on the raw gradient (decoupled decay)
//   rmsprop_update:  s ← α s + (1 − α) g²;  centered: ḡ ← α ḡ + (1 − α) g, d = √(s − ḡ²) + ε, else d = √s + ε;
//                    momentum μ > 0: b ← μ b + g / d, w ← w − lr · b;  else w ← w − lr · g / d
//   advance_step:    one invocation: step += 1, bc1 = 1 − β1^step, bc2 = 1 − β2^step
//   grad_norm_scale: one workgroup: Σ clamp(g)² over a window of the gradients, added up over windows; the
//                    last window sets GRAD_SCALE = min(1, CLIP_NORM / (√Σ + 1e-6))
// The hyperparameters live in a buffer (HYPER_* below; src/optim.rs has the same layout), so the host can
// change the learning rate without rebuilding anything and Adam's step count never leaves the device.

const HYPER_LEARNING_RATE: u32 = 0u;
const HYPER_MOMENTUM: u32 = 1u;
const HYPER_BETA1: u32 = 2u;
const HYPER_BETA2: u32 = 3u;
const HYPER_EPSILON: u32 = 4u;
const HYPER_WEIGHT_DECAY: u32 = 5u;
const HYPER_ALPHA: u32 = 6u;
const HYPER_CENTERED: u32 = 7u;
const HYPER_CLIP_NORM: u32 = 8u;
const HYPER_CLIP_VALUE: u32 = 9u;
const HYPER_STEP: u32 = 10u;
const HYPER_BIAS_CORRECTION1: u32 = 11u;
const HYPER_BIAS_CORRECTION2: u32 = 12u;
const HYPER_GRAD_SQUARES: u32 = 13u;
const HYPER_GRAD_SCALE: u32 = 14u;

@group(0) @binding(1) var<storage, read_write> parameters: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read> hyper: array<f32>;
@group(0) @binding(4) var<storage, read_write> first_state: array<f32>;  // velocity, Adam m, RMSprop s
@group(0) @binding(5) var<storage, read_write> second_state: array<f32>; // Adam v, RMSprop momentum buffer
@group(0) @binding(6) var<storage, read_write> hyper_rw: array<f32>;
@group(0) @binding(7) var<storage, read_write> third_state: array<f32>;  // RMSprop gradient average

fn element(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

// A gradient clamped to ±CLIP_VALUE when that is set (untouched otherwise, so a NaN stays NaN).
fn clip(g: f32, clip_value: f32) -> f32 {
    return select(g, clamp(g, -clip_value, clip_value), clip_value > 0.0);
}

// Whether the updates clip their gradients: a pipeline constant, so that an update built without
// clipping has no clipping code at all (a branch on a uniform still cost llvmpipe 20-40% of sgd_update).
override CLIPPED: bool = false;

// The gradient as the update uses it: clipped only in pipelines built with CLIPPED.
fn clipped_grad(i: u32) -> f32 {
    if !CLIPPED {
        return grads[i];
    }
    let scale = select(1.0, hyper[HYPER_GRAD_SCALE], hyper[HYPER_CLIP_NORM] > 0.0);
    return clip(grads[i], hyper[HYPER_CLIP_VALUE]) * scale;
}

fn decayed_grad(i: u32) -> f32 {
    return clipped_grad(i) + hyper[HYPER_WEIGHT_DECAY] * parameters[i];
}

@compute @workgroup_size(64)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element(gid, groups);
    if i >= dims.m {
        return;
    }
    parameters[i] = parameters[i] - hyper[HYPER_LEARNING_RATE] * decayed_grad(i);
}

@compute @workgroup_size(64)
fn momentum_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element(gid, groups);
    if i >= dims.m {
        return;
    }
    let velocity = hyper[HYPER_MOMENTUM] * first_state[i] + decayed_grad(i);
    first_state[i] = velocity;
    parameters[i] = parameters[i] - hyper[HYPER_LEARNING_RATE] * velocity;
}

@compute @workgroup_size(64)
fn nesterov_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element(gid, groups);
    if i >= dims.m {
        return;
    }
    let g = decayed_grad(i);
    let momentum = hyper[HYPER_MOMENTUM];
    let velocity = momentum * first_state[i] + g;
    first_state[i] = velocity;
    parameters[i] = parameters[i] - hyper[HYPER_LEARNING_RATE] * (g + momentum * velocity);
}

@compute @workgroup_size(64)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element(gid, groups);
    if i >= dims.m {
        return;
    }
    let g = decayed_grad(i);
    let beta1 = hyper[HYPER_BETA1];
    let beta2 = hyper[HYPER_BETA2];
    let m = beta1 * first_state[i] + (1.0 - beta1) * g;
    let v = beta2 * second_state[i] + (1.0 - beta2) * g * g;
    first_state[i] = m;
    second_state[i] = v;
    let step_size = hyper[HYPER_LEARNING_RATE] / hyper[HYPER_BIAS_CORRECTION1];
    let denominator = sqrt(v) / sqrt(hyper[HYPER_BIAS_CORRECTION2]) + hyper[HYPER_EPSILON];
    parameters[i] = parameters[i] - step_size * m / denominator;
}

@compute @workgroup_size(64)
fn adamw_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element(gid, groups);
    if i >= dims.m {
        return;
    }
    let lr = hyper[HYPER_LEARNING_RATE];
    let w = parameters[i] * (1.0 - lr * hyper[HYPER_WEIGHT_DECAY]);
    let g = clipped_grad(i);
    let beta1 = hyper[HYPER_BETA1];
    let beta2 = hyper[HYPER_BETA2];
    let m = beta1 * first_state[i] + (1.0 - beta1) * g;
    let v = beta2 * second_state[i] + (1.0 - beta2) * g * g;
    first_state[i] = m;
    second_state[i] = v;
    let step_size = lr / hyper[HYPER_BIAS_CORRECTION1];
    let denominator = sqrt(v) / sqrt(hyper[HYPER_BIAS_CORRECTION2]) + hyper[HYPER_EPSILON];
    parameters[i] = w - step_size * m / denominator;
}

// The centered variance is clamped at 0 before the square root, where rounding could take it below.
@compute @workgroup_size(64)
fn rmsprop_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element(gid, groups);
    if i >= dims.m {
        return;
    }
    let g = decayed_grad(i);
    let alpha = hyper[HYPER_ALPHA];
    let square_avg = alpha * first_state[i] + (1.0 - alpha) * g * g;
    first_state[i] = square_avg;
    var variance = square_avg;
    if hyper[HYPER_CENTERED] != 0.0 {
        let grad_avg = alpha * third_state[i] + (1.0 - alpha) * g;
        third_state[i] = grad_avg;
        variance = max(square_avg - grad_avg * grad_avg, 0.0);
    }
    let denominator = sqrt(variance) + hyper[HYPER_EPSILON];
    let lr = hyper[HYPER_LEARNING_RATE];
    let momentum = hyper[HYPER_MOMENTUM];
    if momentum > 0.0 {
        let buffer = momentum * second_state[i] + g / denominator;
        second_state[i] = buffer;
        parameters[i] = parameters[i] - lr * buffer;
    } else {
        parameters[i] = parameters[i] - lr * g / denominator;
    }
}

@compute @workgroup_size(1)
fn advance_step() {
    let step = hyper_rw[HYPER_STEP] + 1.0;
    hyper_rw[HYPER_STEP] = step;
    hyper_rw[HYPER_BIAS_CORRECTION1] = 1.0 - pow(hyper_rw[HYPER_BETA1], step);
    hyper_rw[HYPER_BIAS_CORRECTION2] = 1.0 - pow(hyper_rw[HYPER_BETA2], step);
}

const NORM_WORKGROUP: u32 = 256u;
var<workgroup> partial_squares: array<f32, NORM_WORKGROUP>;

// Each invocation sums a strided share of the window's squares, then a fixed tree adds the shares (the
// CPU's grad_norm_scale adds in the same order). dims.m is the window's length.
@compute @workgroup_size(256)
fn grad_norm_scale(@builtin(local_invocation_index) t: u32) {
    let clip_value = hyper_rw[HYPER_CLIP_VALUE];
    var sum = 0.0;
    for (var i = t; i < dims.m; i += NORM_WORKGROUP) {
        let g = clip(grads[i], clip_value);
        sum += g * g;
    }
    partial_squares[t] = sum;
    workgroupBarrier();
    for (var stride = NORM_WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if t < stride {
            partial_squares[t] += partial_squares[t + stride];
        }
        workgroupBarrier();
    }
    if t == 0u {
        var total = partial_squares[0];
        if (dims.flags & FLAG_ACCUMULATE) != 0u {
            total += hyper_rw[HYPER_GRAD_SQUARES];
        }
        hyper_rw[HYPER_GRAD_SQUARES] = total;
        if (dims.flags & FLAG_LAST) != 0u {
            hyper_rw[HYPER_GRAD_SCALE] = min(1.0, hyper_rw[HYPER_CLIP_NORM] / (sqrt(total) + 1e-6));
        }
    }
}
