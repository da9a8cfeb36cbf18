//! Per-op parity: every op runs on the CPU reference and on the wgpu backend from the same inputs, over
//! shapes that are not multiples of any workgroup size. One module per op file: the parity test of the op
//! in `src/ops/<stem>.rs` (entry point in `shaders/<stem>.wgsl`) is in `tests/ops/<stem>.rs`, named after
//! the entry point.

#[path = "../common/mod.rs"]
mod common;

mod activation;
mod confusion;
mod conv;
mod conv2d;
mod data;
mod dropout;
mod layout;
mod loss;
mod matmul;
mod norm;
mod optim;
mod pool;
mod reduce;

use wgtrain::Activation;

pub(crate) use common::gpu_backend;
use common::uniform;

/// Pre-activations covering both tails (±50), the ReLU kink and small values.
pub(crate) fn pre_activations() -> Vec<f32> {
    let mut xs = vec![
        -50.0, -20.0, -9.5, -1.0, -1e-3, -0.0, 0.0, 1e-3, 0.5, 1.0, 9.5, 20.0, 50.0,
    ];
    xs.extend(uniform(99, 51, -6.0, 6.0));
    xs
}

pub(crate) fn elementwise_activations() -> Vec<Activation> {
    let mut acts: Vec<Activation> = Activation::ALL
        .into_iter()
        .filter(|a| a.is_elementwise())
        .collect();
    acts.push(Activation::LeakyRelu(0.2));
    acts
}
