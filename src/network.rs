//! Network description: input width, dense layers, loss; parameter counts, the summary table, the flat
//! parameter layout shared by every backend, and seeded host-side initialisation.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::loss::Loss;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;

/// Every tensor in the flat parameter buffer starts at a multiple of this many floats (256 bytes), the largest
/// storage-buffer offset alignment WebGPU allows, so each one can be bound on its own on any adapter.
pub const PARAM_ALIGN: usize = 64;

/// The widest input or layer a network may have (2³² − 1 units), so that every size computed from the
/// widths is exact in `u128` and a layer's weight count fits in a 64-bit `usize`.
pub const MAX_WIDTH: usize = u32::MAX as usize;

/// One fully connected layer: `output = activation(input · weights + bias)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dense {
    pub units: usize,
    pub activation: Activation,
}

/// A feedforward network of dense layers and the loss it is trained on.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    inputs: usize,
    layers: Vec<Dense>,
    loss: Loss,
}

/// Builds a [`Network`]; [`NetworkBuilder::build`] checks it.
#[derive(Clone, Debug)]
pub struct NetworkBuilder {
    inputs: usize,
    layers: Vec<Dense>,
}

impl NetworkBuilder {
    /// Appends a dense layer of `units` outputs.
    pub fn dense(mut self, units: usize, activation: Activation) -> Self {
        self.layers.push(Dense { units, activation });
        self
    }

    /// Checks widths, activation placement and the loss/output pairing.
    pub fn build(self, loss: Loss) -> Result<Network> {
        let net = Network {
            inputs: self.inputs,
            layers: self.layers,
            loss,
        };
        net.validate()?;
        Ok(net)
    }
}

/// Where one layer's weights and bias sit in the flat parameter buffer (offsets in floats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSlots {
    pub weights: usize,
    pub bias: usize,
}

/// One layer's parameters on the host; `weights` is `[inputs, units]` row-major, so `input · weights`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Network {
    /// Starts a network that takes `inputs` features per sample.
    pub fn builder(inputs: usize) -> NetworkBuilder {
        NetworkBuilder {
            inputs,
            layers: Vec::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.inputs == 0 {
            return Err(Error::InvalidNetwork(
                "input width must be at least 1, got 0".into(),
            ));
        }
        if self.layers.is_empty() {
            return Err(Error::InvalidNetwork(
                "a network needs at least one layer".into(),
            ));
        }
        if self.inputs > MAX_WIDTH {
            return Err(Error::InvalidNetwork(format!(
                "input width must be at most {MAX_WIDTH}, got {}",
                self.inputs
            )));
        }
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.units > MAX_WIDTH {
                return Err(Error::InvalidNetwork(format!(
                    "layer {} must have at most {MAX_WIDTH} units, got {}",
                    i + 1,
                    layer.units
                )));
            }
            if layer.units == 0 {
                return Err(Error::InvalidNetwork(format!(
                    "layer {} must have at least 1 unit, got 0",
                    i + 1
                )));
            }
            if layer.activation == Activation::Softmax && i != last {
                return Err(Error::InvalidNetwork(format!(
                    "softmax is only allowed on the output layer, found on layer {} of {}",
                    i + 1,
                    last + 1
                )));
            }
            if let Activation::LeakyRelu(slope) = layer.activation {
                if !(slope.is_finite() && slope >= 0.0) {
                    return Err(Error::InvalidNetwork(format!(
                        "layer {} leaky_relu slope must be finite and >= 0, got {slope}",
                        i + 1
                    )));
                }
            }
        }
        self.loss.check_output(self.layers[last].activation)
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].units
    }

    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// Input width of layer `i` (the previous layer's units, or the network's inputs).
    pub fn fan_in(&self, i: usize) -> usize {
        if i == 0 {
            self.inputs
        } else {
            self.layers[i - 1].units
        }
    }

    /// The same layers and parameter shapes with every activation replaced by `linear` and the loss `mse`:
    /// what the network computes as plain `input · weights + bias` chains.
    pub fn without_activations(&self) -> Network {
        Network {
            inputs: self.inputs,
            layers: self
                .layers
                .iter()
                .map(|l| Dense {
                    units: l.units,
                    activation: Activation::Linear,
                })
                .collect(),
            loss: Loss::Mse,
        }
    }

    /// `(weights, biases)` of layer `i`; exact on 64-bit targets (widths are at most [`MAX_WIDTH`]).
    pub fn layer_parameter_count(&self, i: usize) -> (usize, usize) {
        (
            self.fan_in(i).saturating_mul(self.layers[i].units),
            self.layers[i].units,
        )
    }

    /// `(weights, biases)` of layer `i`, exact for any widths.
    fn layer_counts(&self, i: usize) -> (u128, u128) {
        let units = self.layers[i].units as u128;
        (self.fan_in(i) as u128 * units, units)
    }

    /// Weights plus biases over all layers, exact for any widths.
    pub fn parameter_count(&self) -> u128 {
        (0..self.layers.len())
            .map(|i| {
                let (w, b) = self.layer_counts(i);
                w + b
            })
            .sum()
    }

    /// Floats in the flat parameter buffer (every tensor aligned, see [`PARAM_ALIGN`]), exact for any widths.
    pub fn param_len(&self) -> u128 {
        let align = |n: u128| n.div_ceil(PARAM_ALIGN as u128) * PARAM_ALIGN as u128;
        (0..self.layers.len())
            .map(|i| {
                let (w, b) = self.layer_counts(i);
                align(w) + align(b)
            })
            .sum()
    }

    /// `layer 1 (dense 4 → 4000000000) holds 16.0 GB of weights`: the layer with the most weights.
    pub fn largest_layer(&self) -> String {
        let (i, weights) = (0..self.layers.len())
            .map(|i| (i, self.layer_counts(i).0))
            .max_by_key(|&(i, w)| (w, std::cmp::Reverse(i)))
            .unwrap_or((0, 0));
        format!(
            "the largest layer is layer {} (dense {} → {}), {} of weights",
            i + 1,
            self.fan_in(i),
            self.layers.get(i).map_or(0, |l| l.units),
            crate::memory::human_bytes(weights * 4)
        )
    }

    /// Offsets of every layer's tensors in the flat parameter buffer, and its total length. Call it once
    /// [`Network::param_len`] is known to fit the device (it then fits `usize`).
    pub fn param_slots(&self) -> (Vec<LayerSlots>, usize) {
        let align = |n: usize| n.div_ceil(PARAM_ALIGN) * PARAM_ALIGN;
        let mut offset = 0;
        let mut slots = Vec::with_capacity(self.layers.len());
        for i in 0..self.layers.len() {
            let (w, b) = self.layer_parameter_count(i);
            let weights = offset;
            let bias = align(weights + w);
            offset = align(bias + b);
            slots.push(LayerSlots { weights, bias });
        }
        (slots, offset)
    }

    /// Layer, shape, weights, biases and activation per layer, then the totals.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<7} {:>13} {:>9} {:>8}  activation",
            "layer", "shape", "weights", "biases"
        );
        let (mut total_w, mut total_b) = (0u128, 0u128);
        for (i, layer) in self.layers.iter().enumerate() {
            let (w, b) = self.layer_counts(i);
            total_w += w;
            total_b += b;
            let shape = format!("{} x {}", self.fan_in(i), layer.units);
            let _ = writeln!(
                out,
                "{:<7} {:>13} {:>9} {:>8}  {}",
                format!("dense{}", i + 1),
                shape,
                w,
                b,
                layer.activation
            );
        }
        let _ = writeln!(
            out,
            "{:<7} {:>13} {:>9} {:>8}",
            "total", "", total_w, total_b
        );
        let _ = writeln!(out, "loss: {}", self.loss);
        let _ = write!(out, "total parameters: {}", total_w + total_b);
        out
    }

    /// Seeded initial parameters: He-uniform (`±√(6 / fan_in)`) for ReLU and leaky ReLU, Glorot-uniform
    /// (`±√(6 / (fan_in + fan_out))`) otherwise, zero biases. Drawn on the host with ChaCha8, whose stream is
    /// fixed across `rand` versions, so every backend starts from the same numbers.
    pub fn init_parameters(&self, seed: u64) -> Vec<LayerParams> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        self.layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let fan_in = self.fan_in(i);
                let limit = match layer.activation {
                    Activation::Relu | Activation::LeakyRelu(_) => (6.0 / fan_in as f32).sqrt(),
                    _ => (6.0 / (fan_in + layer.units) as f32).sqrt(),
                };
                let weights = (0..fan_in * layer.units)
                    .map(|_| rng.random_range(-limit..limit))
                    .collect();
                LayerParams {
                    weights,
                    bias: vec![0.0; layer.units],
                }
            })
            .collect()
    }
}
