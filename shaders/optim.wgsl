// Parameter updates over the whole flat parameter buffer, one dispatch each, with PyTorch's rules.
// Every rule first adds coupled weight decay: g = grad + weight_decay · w.
//   sgd_update:      w ← w − lr · g
//   momentum_update: v ← μ · v + g;  w ← w − lr · v
//   nesterov_update: v ← μ · v + g;  w ← w − lr · (g + μ · v)
//   adam_update:     m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;  w ← w − (lr / bc1) · m / (√v / √bc2 + ε)
//   adamw_update:    w ← w · (1 − lr · wd), then adam_update's rule on the raw gradient (decoupled decay)
//   rmsprop_update:  s ← α s + (1 − α) g²;  centered: ḡ ← α ḡ + (1 − α) g, d = √(s − ḡ²) + ε, else d = √s + ε;
//                    momentum μ > 0: b ← μ b + g / d, w ← w − lr · b;  else w ← w − lr · g / d
//   advance_step:    one invocation: step += 1, bc1 = 1 − β1^step, bc2 = 1 − β2^step
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
const HYPER_STEP: u32 = 8u;
const HYPER_BIAS_CORRECTION1: u32 = 9u;
const HYPER_BIAS_CORRECTION2: u32 = 10u;

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

fn decayed_grad(i: u32) -> f32 {
    return grads[i] + hyper[HYPER_WEIGHT_DECAY] * parameters[i];
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
    let g = grads[i];
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
