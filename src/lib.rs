//! # wgtrain
//!
//! Train dense and convolutional neural networks on any GPU through wgpu compute shaders (Vulkan, Metal,
//! DX12, GL, or a software adapter such as lavapipe), with a CPU backend that every GPU result is tested
//! against.
//!
//! A layer computes `output = activation(input · weights + bias)`; training runs the forward pass, the loss
//! gradient, backpropagation by the chain rule and a gradient-descent update as one submission to the device.
//!
//! ```
//! use wgtrain::{Activation, Device, Loss, Model, Network, TrainConfig};
//!
//! // Learn y = 2x − 1 with a single linear unit.
//! let net = Network::builder(1).dense(1, Activation::Linear).build(Loss::Mse)?;
//! let mut model = Model::new(net, Device::Cpu, 0)?;
//! let x = [-1.0, 0.0, 1.0, 2.0];
//! let y = [-3.0, -1.0, 1.0, 3.0];
//! let config = TrainConfig { iterations: 500, learning_rate: 0.1, ..TrainConfig::default() };
//! model.train(&x, &y, &config)?;
//! assert!(model.loss()? < 1e-6);
//! let prediction = model.predict(&[3.0])?;
//! assert!((prediction[0] - 5.0).abs() < 1e-3);
//! # Ok::<(), wgtrain::Error>(())
//! ```
//!
//! Choose the device with [`Device`] or the `WGTRAIN_DEVICE` environment variable (`auto`, `gpu`,
//! `fallback`, `cpu`).

#![warn(missing_docs)]

pub mod activation;
pub mod backend;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod device;
pub mod distributed;
pub mod error;
pub mod fit;
pub mod gpu;
mod graph;
mod host;
pub mod layers;
pub mod loss;
pub mod memory;
pub mod metrics;
pub mod model;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod network;
pub mod onnx;
pub mod optim;
pub mod schedule;
pub mod verify;

// Engine internals: public only so that the `wgtrain` binary, the examples, the parity tests and the fuzz
// targets can reach them (they are other crates). Hidden from the documentation and not part of the API
// that stays stable: an op's fields, the bench's lines and the plot helpers change with the engine.
/// The benchmark's JSON lines, shared by `wgtrain bench` and `examples/bench.rs`.
#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod ops;
#[doc(hidden)]
pub mod plot;

pub use activation::Activation;
pub use backend::{Backend, Counters, DeviceInfo};
pub use cpu::CpuBackend;
pub use device::Device;
pub use error::{Error, Result};
pub use gpu::WgpuBackend;
pub use layers::{Dense, Layer, Mode, Shape};
pub use loss::{CrossEntropy, Loss};
pub use model::{EpochStats, Model, NamedTensor, OptimizerState, TrainConfig, STEPS_PER_SUBMIT};
pub use network::{LayerParams, Network};
pub use optim::{Clipping, Optimizer};

/// The README's Rust example runs as a doc test, so the front page cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
