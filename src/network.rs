//! Network description: an input shape, layers (see [`crate::layers`]) and a loss. The shape is tracked
//! through the layers and checked when the network is built; this file also holds parameter counts, the
//! summary table, the flat parameter layout shared by every backend, and seeded host-side initialisation.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::layers::{Dense, Init, Layer, ParamSpec, Shape};
use crate::loss::Loss;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;

/// Every tensor in the flat parameter buffer starts at a multiple of this many floats (256 bytes), the largest
/// storage-buffer offset alignment WebGPU allows, so each one can be bound on its own on any adapter.
pub const PARAM_ALIGN: usize = 64;

pub use crate::layers::MAX_WIDTH;

/// A feedforward network: an input shape, its layers and the loss it is trained on.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    input: Shape,
    layers: Vec<Layer>,
    /// The output shape of each layer.
    shapes: Vec<Shape>,
    loss: Loss,
}

/// Builds a [`Network`]; [`NetworkBuilder::build`] checks it.
#[derive(Clone, Debug)]
pub struct NetworkBuilder {
    input: Shape,
    layers: Vec<Layer>,
}

impl NetworkBuilder {
    /// Appends a dense layer of `units` outputs and, unless it is `linear`, the activation after it.
    pub fn dense(mut self, units: usize, activation: Activation) -> Self {
        self.layers.push(Layer::Dense(Dense { units }));
        if activation != Activation::Linear {
            self.layers.push(Layer::Activation(activation));
        }
        self
    }

    /// Appends any layer.
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    /// Appends the layers of a comma-separated spec (see [`Layer::parse_spec`]).
    pub fn spec(mut self, spec: &str) -> Result<Self> {
        self.layers
            .extend(Layer::parse_spec(spec).map_err(Error::InvalidNetwork)?);
        Ok(self)
    }

    /// Checks every layer against the shape it receives, activation placement and the loss/output pairing.
    pub fn build(self, loss: Loss) -> Result<Network> {
        let shapes = check_layers(self.input, &self.layers)?;
        let net = Network {
            input: self.input,
            layers: self.layers,
            shapes,
            loss,
        };
        net.loss.check_output(net.output_activation())?;
        Ok(net)
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidNetwork(message)
}

/// The output shape of every layer, or the first layer that does not fit, named with both shapes.
fn check_layers(input: Shape, layers: &[Layer]) -> Result<Vec<Shape>> {
    if input.is_empty() {
        return Err(invalid(format!(
            "input width must be at least 1, got {input}"
        )));
    }
    if shape_too_wide(input) {
        return Err(invalid(format!(
            "input width must be at most {MAX_WIDTH} per dimension, got {input}"
        )));
    }
    if layers.is_empty() {
        return Err(invalid("a network needs at least one layer".into()));
    }
    let last = layers.len() - 1;
    let mut shape = input;
    let mut shapes = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let here = || format!("layer {i} ({layer})");
        layer
            .kind()
            .check()
            .map_err(|e| invalid(format!("{}: {e}", here())))?;
        if let Some(activation) = layer.activation() {
            check_activation(i, last, activation, &here())?;
        }
        let out = layer
            .kind()
            .output_shape(shape)
            .map_err(|expected| invalid(format!("{} takes {expected}", here())))?;
        if out.is_empty() || shape_too_wide(out) {
            return Err(invalid(format!(
                "{} gives an output of {out} from an input of {shape}",
                here()
            )));
        }
        shapes.push(out);
        shape = out;
    }
    if !matches!(shape, Shape::Flat(_)) {
        return Err(invalid(format!(
            "the output layer must give a flat output, got {shape} (add flatten and dense layers)"
        )));
    }
    Ok(shapes)
}

fn shape_too_wide(shape: Shape) -> bool {
    match shape {
        Shape::Flat(n) => n > MAX_WIDTH,
        Shape::Sequence {
            positions,
            features,
        } => positions > MAX_WIDTH || features > MAX_WIDTH,
        Shape::Image {
            channels,
            height,
            width,
        } => [channels, height, width].iter().any(|&d| d > MAX_WIDTH),
    }
}

/// Softmax only ends the network (the leaky ReLU slope is checked with the layer).
fn check_activation(i: usize, last: usize, activation: Activation, here: &str) -> Result<()> {
    if activation == Activation::Softmax && i != last {
        return Err(invalid(format!(
            "{here}: softmax is only allowed on the output layer, the last one (layer {last} here)"
        )));
    }
    Ok(())
}

/// One layer's parameters on the host; `weights` is `[inputs, units]` row-major, so `input · weights`. A
/// layer that keeps running statistics (batch norm) has them in `state`, in its
/// [`crate::layers::LayerKind::state`] order; they are not trained.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerParams {
    /// The weights in wgtrain's layout: dense `[inputs, units]`, conv `[in·k·k, out]`, both row-major;
    /// batch norm's γ (one per feature or channel).
    pub weights: Vec<f32>,
    /// One bias per output unit or channel (batch norm's β).
    pub bias: Vec<f32>,
    /// The running statistics, one vector per state tensor; empty for a layer that keeps none.
    pub state: Vec<Vec<f32>>,
}

impl LayerParams {
    /// Every tensor of `layers` in one vector, layer by layer: weights, bias, and with `state` the running
    /// statistics (what a broadcast or a finite-difference check walks over).
    pub fn flatten(layers: &[LayerParams], state: bool) -> Vec<f32> {
        let mut flat = Vec::new();
        for layer in layers {
            flat.extend_from_slice(&layer.weights);
            flat.extend_from_slice(&layer.bias);
            if state {
                layer.state.iter().for_each(|s| flat.extend_from_slice(s));
            }
        }
        flat
    }

    /// [`LayerParams::flatten`]'s inverse in the shapes of `like`; without `state`, `like`'s state is kept.
    pub fn unflatten(flat: &[f32], like: &[LayerParams], state: bool) -> Vec<LayerParams> {
        let mut at = 0;
        let mut take = |n: usize| {
            let part = flat[at..at + n].to_vec();
            at += n;
            part
        };
        like.iter()
            .map(|layer| LayerParams {
                weights: take(layer.weights.len()),
                bias: take(layer.bias.len()),
                state: if state {
                    layer.state.iter().map(|s| take(s.len())).collect()
                } else {
                    layer.state.clone()
                },
            })
            .collect()
    }
}

impl Network {
    /// Starts a network that takes `inputs` features per sample.
    pub fn builder(inputs: usize) -> NetworkBuilder {
        Network::builder_for(Shape::Flat(inputs))
    }

    /// Starts a network that takes samples of `input` (for example 1×28×28 images).
    pub fn builder_for(input: Shape) -> NetworkBuilder {
        NetworkBuilder {
            input,
            layers: Vec::new(),
        }
    }

    /// Floats per input sample.
    pub fn inputs(&self) -> usize {
        self.input.size()
    }

    /// The shape of one input sample: a row of features, or an image.
    pub fn input_shape(&self) -> Shape {
        self.input
    }

    /// Floats per output sample.
    pub fn outputs(&self) -> usize {
        self.shapes[self.shapes.len() - 1].size()
    }

    /// The layers in order, activation layers included.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The output shape of each layer.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// The input shape of layer `i`.
    pub fn input_of(&self, i: usize) -> Shape {
        if i == 0 {
            self.input
        } else {
            self.shapes[i - 1]
        }
    }

    /// The loss the network trains on, fixed at build time.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// The activation that ends the network (`linear` when the last layer is not an activation).
    pub fn output_activation(&self) -> Activation {
        self.layers[self.layers.len() - 1]
            .activation()
            .unwrap_or(Activation::Linear)
    }

    /// The parameters of layer `i`.
    pub fn params(&self, i: usize) -> Vec<ParamSpec> {
        self.layers[i]
            .kind()
            .params(self.input_of(i), self.layers.get(i + 1))
    }

    /// Checks that every layer takes a training batch of `rows` samples (batch norm needs two values per
    /// channel); the error names the layer.
    pub fn check_batch(&self, rows: usize) -> Result<()> {
        for (i, layer) in self.layers.iter().enumerate() {
            layer
                .kind()
                .check_batch(self.input_of(i), rows)
                .map_err(|e| Error::value(format!("layer {i} ({layer})"), e))?;
        }
        Ok(())
    }

    /// The state tensors of layer `i` (running statistics).
    pub fn state(&self, i: usize) -> Vec<ParamSpec> {
        self.layers[i].kind().state(self.input_of(i))
    }

    /// Offsets of every state tensor of every layer in the flat state buffer, and its length (at least 1).
    pub fn state_slots(&self) -> (Vec<Vec<usize>>, usize) {
        let (slots, len) = self.slots(|i| self.state(i));
        (slots, len.max(1))
    }

    /// Offsets of every tensor `specs(i)` lists for each layer `i`, one after another, each aligned to
    /// [`PARAM_ALIGN`], and the total length.
    fn slots(&self, specs: impl Fn(usize) -> Vec<ParamSpec>) -> (Vec<Vec<usize>>, usize) {
        let align = |n: usize| n.div_ceil(PARAM_ALIGN) * PARAM_ALIGN;
        let mut offset = 0;
        let slots = (0..self.layers.len())
            .map(|i| {
                specs(i)
                    .iter()
                    .map(|p| {
                        let at = offset;
                        offset = align(at + p.len() as usize);
                        at
                    })
                    .collect()
            })
            .collect();
        (slots, offset)
    }

    /// Indices of the layers that have parameters, in order: [`crate::Model::parameters`] gives one
    /// [`LayerParams`] for each.
    pub fn parametrised_layers(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| !self.params(i).is_empty())
            .collect()
    }

    /// The same layers and parameter shapes without the activation layers, and the loss `mse`: what the
    /// network computes as plain `input · weights + bias` chains.
    pub fn without_activations(&self) -> Network {
        let layers: Vec<Layer> = self
            .layers
            .iter()
            .filter(|l| l.activation().is_none())
            .copied()
            .collect();
        let shapes = check_layers(self.input, &layers).expect("dropping activations keeps shapes");
        Network {
            input: self.input,
            layers,
            shapes,
            loss: Loss::Mse,
        }
    }

    /// Parameters over all layers, exact for any sizes.
    pub fn parameter_count(&self) -> u128 {
        (0..self.layers.len())
            .flat_map(|i| self.params(i))
            .map(|p| p.len())
            .sum()
    }

    /// Floats in the flat parameter buffer (every tensor aligned, see [`PARAM_ALIGN`]), exact for any sizes.
    pub fn param_len(&self) -> u128 {
        let align = |n: u128| n.div_ceil(PARAM_ALIGN as u128) * PARAM_ALIGN as u128;
        (0..self.layers.len())
            .flat_map(|i| self.params(i))
            .map(|p| align(p.len()))
            .sum()
    }

    /// `the largest layer is layer 0 (dense 4000000000, 4 → 4000000000), 16.0 GB of parameters`.
    pub fn largest_layer(&self) -> String {
        let count = |i: usize| -> u128 { self.params(i).iter().map(ParamSpec::len).sum() };
        let (i, floats) = (0..self.layers.len())
            .map(|i| (i, count(i)))
            .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
            .unwrap_or((0, 0));
        format!(
            "the largest layer is layer {i} ({}, {} → {}), {} of parameters",
            self.layers[i],
            self.input_of(i),
            self.shapes[i],
            crate::memory::human_bytes(floats * 4)
        )
    }

    /// Offsets of every parameter of every layer in the flat parameter buffer, and its total length. Call
    /// it once [`Network::param_len`] is known to fit the device (it then fits `usize`).
    pub fn param_slots(&self) -> (Vec<Vec<usize>>, usize) {
        self.slots(|i| self.params(i))
    }

    /// One row per layer: its index (as in checkpoints, `layers.{i}`), kind, output shape and parameters;
    /// then the totals.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<6} {:<18} {:>14} {:>12}",
            "layer", "kind", "output shape", "parameters"
        );
        let _ = writeln!(out, "{:<6} {:<18} {:>14}", "input", "", self.input);
        for (i, layer) in self.layers.iter().enumerate() {
            let count: u128 = self.params(i).iter().map(ParamSpec::len).sum();
            let _ = writeln!(
                out,
                "{:<6} {:<18} {:>14} {:>12}",
                i,
                layer.to_string(),
                self.shapes[i].to_string(),
                count
            );
        }
        let _ = writeln!(out, "loss: {}", self.loss);
        let _ = write!(out, "total parameters: {}", self.parameter_count());
        out
    }

    /// Seeded initial parameters, one [`LayerParams`] per layer that has parameters (see
    /// [`crate::layers::LayerKind::params`] for each kind's initialiser). Drawn on the host with ChaCha8,
    /// whose stream is fixed across `rand` versions, so every backend starts from the same numbers.
    pub fn init_parameters(&self, seed: u64) -> Vec<LayerParams> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |spec: &ParamSpec| -> Vec<f32> {
            let len = spec.len() as usize;
            match spec.init {
                Init::Zeros => vec![0.0; len],
                Init::Ones => vec![1.0; len],
                Init::Uniform(limit) => (0..len).map(|_| rng.random_range(-limit..limit)).collect(),
            }
        };
        self.parametrised_layers()
            .into_iter()
            .map(|i| {
                let specs = self.params(i);
                LayerParams {
                    weights: draw(&specs[0]),
                    bias: draw(&specs[1]),
                    state: self.state(i).iter().map(&mut draw).collect(),
                }
            })
            .collect()
    }
}
