//! Shared test helpers: named tolerances, `assert_close`, seeded data and the GPU backend under test.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use wgtrain::backend::{BufferId, Op};
use wgtrain::{Backend, CpuBackend, WgpuBackend};

/// `|actual − expected| ≤ abs + rel · |expected|`, elementwise.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f32,
    pub rel: f32,
}

/// Elementwise kernels: GPU `exp`/`tanh` may differ from the host's by a few ULP.
pub const ELEMENTWISE: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-4,
};
/// Dot products of up to a few hundred terms summed in another order (inputs in [-1, 1]).
pub const MATMUL: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};
/// Reductions (loss sums, bias gradients) over up to a few thousand terms.
pub const REDUCTION: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-4,
};
/// Whole training runs: 50 steps of rounding differences compounding; the issue asks for relative 1e-3.
pub const TRAINING: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-3,
};

/// Fails with the worst element, both values and the length when any element is out of tolerance.
#[track_caller]
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: Tolerance) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let excess = if a.is_nan() || e.is_nan() {
            if a.is_nan() && e.is_nan() {
                0.0
            } else {
                f32::INFINITY
            }
        } else {
            (a - e).abs() - (tol.abs + tol.rel * e.abs())
        };
        if excess > 0.0 && worst.is_none_or(|(_, w)| excess > w) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} of {} is {} but expected {} (tolerance abs {} rel {})",
            actual.len(),
            actual[i],
            expected[i],
            tol.abs,
            tol.rel
        );
    }
}

/// `len` values uniform in `[lo, hi)` from a fixed seed.
pub fn uniform(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// The GPU backend the parity tests use: the fallback adapter (lavapipe in CI), else a hardware GPU.
/// Under `CI=true` a missing adapter fails the test; elsewhere the test is skipped with a printed reason.
pub fn gpu_backend() -> Option<WgpuBackend> {
    let adapter = wgtrain::gpu::fallback_adapter().or_else(|_| wgtrain::gpu::hardware_adapter());
    match adapter {
        Ok(adapter) => {
            let backend = WgpuBackend::new(adapter).expect("open the wgpu device");
            record_adapter(&backend.info().to_string());
            Some(backend)
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but no wgpu adapter was found ({e}); GPU tests must run in CI");
            }
            eprintln!("SKIPPED: no wgpu adapter ({e}); install mesa-vulkan-drivers for lavapipe");
            None
        }
    }
}

/// Leaves the adapter the GPU tests ran on in `target/gpu-tests-adapter.txt` for `.ci/run` to print.
fn record_adapter(line: &str) {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").to_string());
    let _ = std::fs::write(
        format!("{target}/gpu-tests-adapter.txt"),
        format!("{line}\n"),
    );
}

/// Allocates `buffers` on `backend`, runs the op built from their ids once, and reads every buffer back.
pub fn run_op(
    backend: &mut dyn Backend,
    buffers: &[Vec<f32>],
    make: &dyn Fn(&[BufferId]) -> Op,
) -> Vec<Vec<f32>> {
    let ids: Vec<BufferId> = buffers
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let id = backend
                .alloc(&format!("operand{i}"), data.len())
                .expect("alloc");
            backend.write(id, 0, data).expect("write");
            id
        })
        .collect();
    let kernel = backend.prepare(&make(&ids)).expect("prepare");
    backend.enqueue(kernel).expect("enqueue");
    backend.submit().expect("submit");
    ids.iter()
        .zip(buffers)
        .map(|(&id, data)| backend.read(id.region(data.len())).expect("read"))
        .collect()
}

/// Runs the op on both backends and compares every buffer; returns the CPU results.
pub fn parity(
    gpu: &mut WgpuBackend,
    what: &str,
    buffers: &[Vec<f32>],
    tol: Tolerance,
    make: &dyn Fn(&[BufferId]) -> Op,
) -> Vec<Vec<f32>> {
    let cpu_out = run_op(&mut CpuBackend::new(), buffers, make);
    let gpu_out = run_op(gpu, buffers, make);
    for (i, (g, c)) in gpu_out.iter().zip(&cpu_out).enumerate() {
        assert_close(&format!("{what}, buffer {i}"), g, c, tol);
    }
    cpu_out
}
pub mod cli;

/// The devices a whole-run test checks: the CPU backend, and the fallback adapter when the GPU tests have
/// one (under `CI=true`, [`gpu_backend`] fails without it).
pub fn devices() -> Vec<wgtrain::Device> {
    let mut devices = vec![wgtrain::Device::Cpu];
    if gpu_backend().is_some() {
        devices.push(wgtrain::Device::Fallback);
    }
    devices
}
