//! Parity of dropout (`src/ops/dropout.rs`, `shaders/dropout.wgsl`): the CPU and the GPU draw bit for bit the
//! same mask from (element, step, seed), the kept share is 1 − p, and evaluation passes values through.

use crate::common::{parity, run_op, uniform, Tolerance};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::Dropout;
use wgtrain::optim::hyper;
use wgtrain::CpuBackend;

const EXACT: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };

fn hyper_at(step: f32) -> Vec<f32> {
    let mut h = vec![0.0; hyper::LEN];
    h[hyper::STEP] = step;
    h
}

fn op(b: &[wgtrain::backend::BufferId], len: usize, seed: u32, p: f32, training: bool) -> Op {
    Op::Dropout(Dropout::new(
        (b[0].region(len), b[1].region(len), b[2].region(hyper::LEN)),
        len,
        seed,
        p,
        training,
    ))
}

#[test]
fn dropout() {
    let Some(mut gpu) = gpu_backend() else { return };
    for (len, p, step, seed) in [
        (1, 0.5, 0.0, 1),
        (1000, 0.3, 7.0, 2),
        (65_537, 0.9, 123.0, 3),
        (64, 0.0, 1.0, 4),
    ] {
        let input = uniform(seed as u64, len, 0.5, 2.0);
        let out = parity(
            &mut gpu,
            &format!("dropout {len} p={p} step={step}"),
            &[input.clone(), vec![f32::NAN; len], hyper_at(step)],
            EXACT,
            &|b| op(b, len, seed, p, true),
        );
        // Every kept value is scaled by 1 / (1 − p), the rest are 0.
        let scale = 1.0 / (1.0 - p);
        for (&x, &y) in input.iter().zip(&out[1]) {
            assert!(y == 0.0 || y == x * scale, "{x} → {y} with p {p}");
        }
    }
}

/// The kept share is 1 − p (within four binomial standard deviations), masks differ between steps and
/// seeds, and evaluation is the identity.
#[test]
fn dropout_masks_by_hand() {
    let len = 100_000;
    let ones = vec![1.0; len];
    let kept = |seed: u32, step: f32, p: f32, training: bool| -> Vec<f32> {
        run_op(
            &mut CpuBackend::new(),
            &[ones.clone(), vec![0.0; len], hyper_at(step)],
            &|b| op(b, len, seed, p, training),
        )[1]
        .clone()
    };
    for p in [0.1f32, 0.5, 0.8] {
        let mask = kept(9, 3.0, p, true);
        let share = mask.iter().filter(|&&v| v != 0.0).count() as f64 / len as f64;
        let sd = (f64::from(p) * (1.0 - f64::from(p)) / len as f64).sqrt();
        assert!(
            (share - (1.0 - f64::from(p))).abs() < 4.0 * sd,
            "p {p}: kept {share}"
        );
    }
    assert_eq!(
        kept(9, 3.0, 0.5, true),
        kept(9, 3.0, 0.5, true),
        "the same key, the same mask"
    );
    assert_ne!(
        kept(9, 3.0, 0.5, true),
        kept(9, 4.0, 0.5, true),
        "another step"
    );
    assert_ne!(
        kept(9, 3.0, 0.5, true),
        kept(10, 3.0, 0.5, true),
        "another seed"
    );
    assert_eq!(
        kept(9, 3.0, 0.5, false),
        ones,
        "evaluation passes values through"
    );
}
