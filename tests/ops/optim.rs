//! Parity of the optimizer updates (`src/ops/optim.rs`, `shaders/optim.wgsl`); the rules are also checked
//! against PyTorch's formulas written out by hand.

use crate::common::{assert_close, parity, uniform, ELEMENTWISE};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::{
    AdamUpdate, AdamWUpdate, AdvanceStep, GradNormScale, MomentumUpdate, NesterovUpdate,
    RmspropUpdate, SgdUpdate,
};
use wgtrain::optim::hyper;

/// A hyperparameter buffer as `Model` keeps it, mid-run at `step` (bias corrections already advanced).
fn hyper(lr: f32, momentum: f32, weight_decay: f32, step: f32) -> Vec<f32> {
    let mut h = vec![0.0; hyper::LEN];
    h[hyper::LEARNING_RATE] = lr;
    h[hyper::MOMENTUM] = momentum;
    h[hyper::BETA1] = 0.9;
    h[hyper::BETA2] = 0.999;
    h[hyper::EPSILON] = 1e-8;
    h[hyper::WEIGHT_DECAY] = weight_decay;
    h[hyper::STEP] = step;
    h[hyper::BIAS_CORRECTION1] = 1.0 - 0.9f32.powf(step);
    h[hyper::BIAS_CORRECTION2] = 1.0 - 0.999f32.powf(step);
    h
}

/// 4_200_000 floats need more than 65535 workgroups of 64: the dispatch is split over two dimensions.
const UPDATE_LENGTHS: [usize; 5] = [1, 63, 65, 1000, 4_200_000];

#[test]
fn sgd_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        for wd in [0.0, 0.01] {
            let params = uniform(len as u64, len, -1.0, 1.0);
            let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
            let out = parity(
                &mut gpu,
                &format!("sgd_update {len} wd {wd}"),
                &[params.clone(), grads.clone(), hyper(0.1, 0.0, wd, 0.0)],
                ELEMENTWISE,
                &|b| {
                    Op::SgdUpdate(SgdUpdate {
                        params: b[0].region(len),
                        grads: b[1].region(len),
                        hyper: b[2].region(hyper::LEN),
                        clipped: false,
                    })
                },
            );
            let i = len - 1;
            let expected = params[i] - 0.1 * (grads[i] + wd * params[i]);
            assert_close(
                "sgd_update (CPU vs formula)",
                &out[0][i..],
                &[expected],
                ELEMENTWISE,
            );
        }
    }
}

#[test]
fn momentum_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        let params = uniform(len as u64, len, -1.0, 1.0);
        let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
        let velocity = uniform(len as u64 + 2, len, -0.5, 0.5);
        let buffers = [
            params.clone(),
            grads.clone(),
            velocity.clone(),
            hyper(0.05, 0.9, 0.001, 3.0),
        ];
        let out = parity(
            &mut gpu,
            &format!("momentum_update {len}"),
            &buffers,
            ELEMENTWISE,
            &|b| {
                Op::MomentumUpdate(MomentumUpdate {
                    params: b[0].region(len),
                    grads: b[1].region(len),
                    velocity: b[2].region(len),
                    hyper: b[3].region(hyper::LEN),
                    clipped: false,
                })
            },
        );
        let i = len - 1;
        let v = 0.9 * velocity[i] + grads[i] + 0.001 * params[i];
        assert_close(
            "momentum velocity (CPU vs formula)",
            &out[2][i..],
            &[v],
            ELEMENTWISE,
        );
        assert_close(
            "momentum_update (CPU vs formula)",
            &out[0][i..],
            &[params[i] - 0.05 * v],
            ELEMENTWISE,
        );
    }
}

#[test]
fn adam_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        let params = uniform(len as u64, len, -1.0, 1.0);
        let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
        let m = uniform(len as u64 + 2, len, -0.1, 0.1);
        let v = uniform(len as u64 + 3, len, 0.0, 0.01);
        let h = hyper(0.001, 0.0, 0.01, 5.0);
        let buffers = [
            params.clone(),
            grads.clone(),
            m.clone(),
            v.clone(),
            h.clone(),
        ];
        let out = parity(
            &mut gpu,
            &format!("adam_update {len}"),
            &buffers,
            ELEMENTWISE,
            &|b| {
                Op::AdamUpdate(AdamUpdate {
                    params: b[0].region(len),
                    grads: b[1].region(len),
                    first_moment: b[2].region(len),
                    second_moment: b[3].region(len),
                    hyper: b[4].region(hyper::LEN),
                    clipped: false,
                })
            },
        );
        // PyTorch's Adam, in f64.
        let i = len - 1;
        let g = f64::from(grads[i]) + 0.01 * f64::from(params[i]);
        let m1 = 0.9 * f64::from(m[i]) + 0.1 * g;
        let v1 = 0.999 * f64::from(v[i]) + 0.001 * g * g;
        let (bc1, bc2) = (1.0 - 0.9f64.powi(5), 1.0 - 0.999f64.powi(5));
        let w = f64::from(params[i]) - 0.001 / bc1 * m1 / (v1.sqrt() / bc2.sqrt() + 1e-8);
        assert_close(
            "adam m (CPU vs f64)",
            &out[2][i..],
            &[m1 as f32],
            ELEMENTWISE,
        );
        assert_close(
            "adam v (CPU vs f64)",
            &out[3][i..],
            &[v1 as f32],
            ELEMENTWISE,
        );
        assert_close(
            "adam_update (CPU vs f64)",
            &out[0][i..],
            &[w as f32],
            ELEMENTWISE,
        );
    }
}

#[test]
fn nesterov_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        let params = uniform(len as u64, len, -1.0, 1.0);
        let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
        let velocity = uniform(len as u64 + 2, len, -0.5, 0.5);
        let buffers = [
            params.clone(),
            grads.clone(),
            velocity.clone(),
            hyper(0.05, 0.9, 0.001, 3.0),
        ];
        let out = parity(
            &mut gpu,
            &format!("nesterov_update {len}"),
            &buffers,
            ELEMENTWISE,
            &|b| {
                Op::NesterovUpdate(NesterovUpdate {
                    params: b[0].region(len),
                    grads: b[1].region(len),
                    velocity: b[2].region(len),
                    hyper: b[3].region(hyper::LEN),
                    clipped: false,
                })
            },
        );
        // PyTorch's SGD(nesterov=True): the step uses g + μ·v, not v.
        let i = len - 1;
        let g = grads[i] + 0.001 * params[i];
        let v = 0.9 * velocity[i] + g;
        assert_close(
            "nesterov velocity (CPU vs formula)",
            &out[2][i..],
            &[v],
            ELEMENTWISE,
        );
        assert_close(
            "nesterov_update (CPU vs formula)",
            &out[0][i..],
            &[params[i] - 0.05 * (g + 0.9 * v)],
            ELEMENTWISE,
        );
    }
}

#[test]
fn adamw_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        let params = uniform(len as u64, len, -1.0, 1.0);
        let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
        let m = uniform(len as u64 + 2, len, -0.1, 0.1);
        let v = uniform(len as u64 + 3, len, 0.0, 0.01);
        let buffers = [
            params.clone(),
            grads.clone(),
            m.clone(),
            v.clone(),
            hyper(0.01, 0.0, 0.1, 5.0),
        ];
        let out = parity(
            &mut gpu,
            &format!("adamw_update {len}"),
            &buffers,
            ELEMENTWISE,
            &|b| {
                Op::AdamWUpdate(AdamWUpdate {
                    params: b[0].region(len),
                    grads: b[1].region(len),
                    first_moment: b[2].region(len),
                    second_moment: b[3].region(len),
                    hyper: b[4].region(hyper::LEN),
                    clipped: false,
                })
            },
        );
        // PyTorch's AdamW, in f64: the decay scales the weight; the moments see the raw gradient.
        let i = len - 1;
        let g = f64::from(grads[i]);
        let m1 = 0.9 * f64::from(m[i]) + 0.1 * g;
        let v1 = 0.999 * f64::from(v[i]) + 0.001 * g * g;
        let (bc1, bc2) = (1.0 - 0.9f64.powi(5), 1.0 - 0.999f64.powi(5));
        let w = f64::from(params[i]) * (1.0 - 0.01 * 0.1)
            - 0.01 / bc1 * m1 / (v1.sqrt() / bc2.sqrt() + 1e-8);
        assert_close(
            "adamw m (CPU vs f64)",
            &out[2][i..],
            &[m1 as f32],
            ELEMENTWISE,
        );
        assert_close(
            "adamw v (CPU vs f64)",
            &out[3][i..],
            &[v1 as f32],
            ELEMENTWISE,
        );
        assert_close(
            "adamw_update (CPU vs f64)",
            &out[0][i..],
            &[w as f32],
            ELEMENTWISE,
        );
    }
}

#[test]
fn rmsprop_update() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &UPDATE_LENGTHS {
        for (momentum, centered) in [(0.0, false), (0.9, false), (0.0, true), (0.5, true)] {
            let params = uniform(len as u64, len, -1.0, 1.0);
            let grads = uniform(len as u64 + 1, len, -1.0, 1.0);
            let square_avg = uniform(len as u64 + 2, len, 0.5, 1.0);
            let buffer = uniform(len as u64 + 3, len, -0.1, 0.1);
            let grad_avg = uniform(len as u64 + 4, len, -0.5, 0.5);
            let mut h = hyper(0.01, momentum, 0.01, 5.0);
            h[hyper::ALPHA] = 0.9;
            h[hyper::CENTERED] = if centered { 1.0 } else { 0.0 };
            let buffers = [
                params.clone(),
                grads.clone(),
                square_avg.clone(),
                buffer.clone(),
                grad_avg.clone(),
                h,
            ];
            let what = format!("rmsprop_update {len} momentum {momentum} centered {centered}");
            let out = parity(&mut gpu, &what, &buffers, ELEMENTWISE, &|b| {
                Op::RmspropUpdate(RmspropUpdate {
                    params: b[0].region(len),
                    grads: b[1].region(len),
                    square_avg: b[2].region(len),
                    momentum_buffer: b[3].region(len),
                    grad_avg: b[4].region(len),
                    hyper: b[5].region(hyper::LEN),
                    clipped: false,
                })
            });
            // PyTorch's RMSprop, in f64.
            let i = len - 1;
            let g = f64::from(grads[i]) + 0.01 * f64::from(params[i]);
            let s = 0.9 * f64::from(square_avg[i]) + 0.1 * g * g;
            let a = 0.9 * f64::from(grad_avg[i]) + 0.1 * g;
            let avg = if centered { s - a * a } else { s }.sqrt() + 1e-8;
            let b = f64::from(momentum) * f64::from(buffer[i]) + g / avg;
            let w = f64::from(params[i]) - 0.01 * if momentum > 0.0 { b } else { g / avg };
            assert_close(&what, &out[0][i..], &[w as f32], ELEMENTWISE);
            assert_close(&what, &out[2][i..], &[s as f32], ELEMENTWISE);
            let b_want = if momentum > 0.0 { b as f32 } else { buffer[i] };
            assert_close(&what, &out[3][i..], &[b_want], ELEMENTWISE);
            let a_want = if centered { a as f32 } else { grad_avg[i] };
            assert_close(&what, &out[4][i..], &[a_want], ELEMENTWISE);
        }
    }
}

/// 8_388_948 floats are 340 more than one window (256 invocations × 32768 steps): two windows.
#[test]
fn grad_norm_scale() {
    let Some(mut gpu) = gpu_backend() else { return };
    for &len in &[1, 63, 1000, 4_200_000, 8_388_948] {
        for (clip_norm, clip_value) in [(1.0, 0.0), (1e6, 0.0), (0.5, 0.01)] {
            let grads = uniform(len as u64, len, -0.05, 0.05);
            let mut h = hyper(0.1, 0.0, 0.0, 1.0);
            h[hyper::CLIP_NORM] = clip_norm;
            h[hyper::CLIP_VALUE] = clip_value;
            let what = format!("grad_norm_scale {len} norm {clip_norm} value {clip_value}");
            // Each of the 256 partial sums adds up to 32768 squares in f32: against f64 that drifts by
            // about 2e-4 relative at 8M gradients (CPU and GPU agree more closely, in the same order).
            let tol = crate::common::Tolerance {
                abs: 1e-6,
                rel: if len > 1_000_000 { 1e-3 } else { 1e-5 },
            };
            let out = parity(&mut gpu, &what, &[grads.clone(), h], tol, &|b| {
                Op::GradNormScale(GradNormScale {
                    grads: b[0].region(len),
                    hyper: b[1].region(hyper::LEN),
                })
            });
            // torch.nn.utils.clip_grad_norm_ after clip_grad_value_, in f64.
            let bound = if clip_value > 0.0 {
                clip_value
            } else {
                f32::MAX
            };
            let squares: f64 = grads
                .iter()
                .map(|&g| f64::from(g.clamp(-bound, bound)).powi(2))
                .sum();
            let scale = (f64::from(clip_norm) / (squares.sqrt() + 1e-6)).min(1.0);
            assert_close(
                &what,
                &out[1][hyper::GRAD_SQUARES..=hyper::GRAD_SCALE],
                &[squares as f32, scale as f32],
                tol,
            );
        }
    }
}

/// Every update reads its gradient clamped to ±CLIP_VALUE and scaled by GRAD_SCALE while clipping by norm.
#[test]
fn updates_read_clipped_gradients() {
    let Some(mut gpu) = gpu_backend() else { return };
    let len = 1000;
    let params = uniform(1, len, -1.0, 1.0);
    let grads = uniform(2, len, -1.0, 1.0);
    let mut h = hyper(0.1, 0.0, 0.01, 1.0);
    h[hyper::CLIP_NORM] = 2.0;
    h[hyper::CLIP_VALUE] = 0.3;
    h[hyper::GRAD_SCALE] = 0.25;
    let out = parity(
        &mut gpu,
        "sgd_update with clipping",
        &[params.clone(), grads.clone(), h.clone()],
        ELEMENTWISE,
        &|b| {
            Op::SgdUpdate(SgdUpdate {
                params: b[0].region(len),
                grads: b[1].region(len),
                hyper: b[2].region(hyper::LEN),
                clipped: true,
            })
        },
    );
    let expected: Vec<f32> = params
        .iter()
        .zip(&grads)
        .map(|(&w, &g)| w - 0.1 * (g.clamp(-0.3, 0.3) * 0.25 + 0.01 * w))
        .collect();
    assert_close(
        "clipped sgd (CPU vs formula)",
        &out[0],
        &expected,
        ELEMENTWISE,
    );
    // Without CLIP_NORM the scale left in the buffer is ignored.
    h[hyper::CLIP_NORM] = 0.0;
    let out = parity(
        &mut gpu,
        "adamw_update with clipping by value",
        &[
            params.clone(),
            grads.clone(),
            vec![0.0; len],
            vec![0.0; len],
            h.clone(),
        ],
        ELEMENTWISE,
        &|b| {
            Op::AdamWUpdate(AdamWUpdate {
                params: b[0].region(len),
                grads: b[1].region(len),
                first_moment: b[2].region(len),
                second_moment: b[3].region(len),
                hyper: b[4].region(hyper::LEN),
                clipped: true,
            })
        },
    );
    let m: Vec<f32> = grads.iter().map(|&g| 0.1 * g.clamp(-0.3, 0.3)).collect();
    assert_close("adamw m from clipped g", &out[2], &m, ELEMENTWISE);
    // An update launched without clipping reads none of the clipping entries, on either backend.
    h[hyper::CLIP_NORM] = 2.0;
    let out = parity(
        &mut gpu,
        "sgd_update not clipped",
        &[params.clone(), grads.clone(), h],
        ELEMENTWISE,
        &|b| {
            Op::SgdUpdate(SgdUpdate {
                params: b[0].region(len),
                grads: b[1].region(len),
                hyper: b[2].region(hyper::LEN),
                clipped: false,
            })
        },
    );
    let plain: Vec<f32> = params
        .iter()
        .zip(&grads)
        .map(|(&w, &g)| w - 0.1 * (g + 0.01 * w))
        .collect();
    assert_close(
        "unclipped sgd (CPU vs formula)",
        &out[0],
        &plain,
        ELEMENTWISE,
    );
}

#[test]
fn advance_step() {
    let Some(mut gpu) = gpu_backend() else { return };
    for step in [0.0, 1.0, 99.0, 9999.0] {
        let out = parity(
            &mut gpu,
            &format!("advance_step from {step}"),
            &[hyper(0.1, 0.0, 0.0, step)],
            ELEMENTWISE,
            &|b| {
                Op::AdvanceStep(AdvanceStep {
                    hyper: b[0].region(hyper::LEN),
                })
            },
        );
        let t = step + 1.0;
        assert_eq!(out[0][hyper::STEP], t);
        assert_close(
            "bias corrections (CPU vs f64)",
            &out[0][hyper::BIAS_CORRECTION1..=hyper::BIAS_CORRECTION2],
            &[
                (1.0 - 0.9f64.powf(f64::from(t))) as f32,
                (1.0 - 0.999f64.powf(f64::from(t))) as f32,
            ],
            ELEMENTWISE,
        );
        assert_eq!(
            out[0][..hyper::STEP],
            hyper(0.1, 0.0, 0.0, step)[..hyper::STEP],
            "host-owned entries untouched"
        );
    }
}
