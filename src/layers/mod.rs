//! Layers as units. Each kind is one file here that says its output shape, its parameters (with PyTorch's
//! names and layouts and their initialisers) and its forward and backward passes as [`Op`]s. [`Layer`] is
//! the closed list of kinds, written once in the `layers!` invocation below; the network, the graph and
//! the checkpoint reach a kind only through [`LayerKind`].

mod activation;
mod batch_norm;
mod conv2d;
mod dense;
mod dropout;
mod flatten;
mod pool;

pub use batch_norm::{BatchNorm, EPS as BATCH_NORM_EPS};
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};

use crate::activation::Activation;
use crate::ops::{ConvAlgorithm, Op, Region};
use std::fmt;

/// The widest input or layer a network may have (2³² − 1 units per dimension), so that every size computed
/// from the widths is exact in `u128` and a layer's weight count fits in a 64-bit `usize`.
pub const MAX_WIDTH: usize = u32::MAX as usize;

/// The shape of one sample: a row of features, or channels × height × width (the batch is not part of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shape {
    /// A row of this many features.
    Flat(usize),
    /// `positions` rows of `features` each, position by position (`[T, d]` of `[N, T, d]`): what dense
    /// layers, activations and dropout act on position by position, as `torch.nn.Linear` does on the last
    /// axis.
    Sequence {
        /// Positions (time steps, tokens), the T of `[N, T, d]`.
        positions: usize,
        /// Features at each position, the d of `[N, T, d]`.
        features: usize,
    },
    /// An image of `channels × height × width` values, channel by channel, each row-major (NCHW without
    /// the N).
    Image {
        /// Channels (planes), the C of NCHW.
        channels: usize,
        /// Rows of pixels per channel.
        height: usize,
        /// Pixels per row.
        width: usize,
    },
}

impl Shape {
    /// Floats per sample, exact for any sizes.
    pub fn len(&self) -> u128 {
        match *self {
            Shape::Flat(n) => n as u128,
            Shape::Sequence {
                positions,
                features,
            } => positions as u128 * features as u128,
            Shape::Image {
                channels,
                height,
                width,
            } => channels as u128 * height as u128 * width as u128,
        }
    }

    /// Whether a sample holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Floats per sample; the network checks at build time that every shape fits a `usize`.
    pub(crate) fn size(&self) -> usize {
        self.len() as usize
    }

    /// A sample as `(rows, width)` for layers that act on every position alike (`nn.Linear`'s last
    /// axis): `(positions, features)` of a sequence, `(1, n)` of a flat row, `(1, C·H·W)` of an image.
    pub fn positions_and_features(&self) -> (usize, usize) {
        match *self {
            Shape::Sequence {
                positions,
                features,
            } => (positions, features),
            _ => (1, self.size()),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shape::Flat(n) => write!(f, "{n}"),
            Shape::Sequence {
                positions,
                features,
            } => write!(f, "{positions}x{features} (positions x features)"),
            Shape::Image {
                channels,
                height,
                width,
            } => write!(f, "{channels}x{height}x{width}"),
        }
    }
}

/// Training (batch statistics, dropout) or evaluation (running statistics, no dropout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Training: batch norm normalises with the batch's statistics and updates its running ones; dropout
    /// drops.
    Train,
    /// Evaluation and prediction: batch norm normalises with its running statistics; dropout passes values
    /// through.
    Eval,
}

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Init {
    /// Every value 0 (biases, batch norm's β and running mean).
    Zeros,
    /// Every value 1 (batch norm's γ and running variance).
    Ones,
    /// Uniform in `(−limit, limit)`, drawn from the network's seeded stream.
    Uniform(f32),
}

/// One parameter tensor of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// PyTorch's name for it in the layer (`weight`, `bias`).
    pub name: &'static str,
    /// Its shape in PyTorch's layout (`[out, in]` for a linear layer's weight).
    pub torch_shape: Vec<usize>,
    /// Stored as the transpose of `torch_shape` (a dense layer keeps `[in, out]`, so `input · weights`).
    pub transposed: bool,
    /// How the values start in a new network.
    pub init: Init,
    /// Values must be ≥ 0 (a variance, a count): a file holding a negative one is refused.
    pub nonnegative: bool,
}

impl ParamSpec {
    /// Floats in the tensor, exact for any sizes.
    pub fn len(&self) -> u128 {
        self.torch_shape.iter().map(|&d| d as u128).product()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How an activation layer runs, decided by the graph from its neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fusion {
    /// It runs its own ops.
    Own,
    /// The layer before applied it in its epilogue; only the backward pass is this layer's.
    IntoPrevious,
    /// The loss takes the logits and applies it (softmax with cross-entropy, sigmoid with binary
    /// cross-entropy), so neither pass is this layer's.
    IntoLoss,
}

/// What one layer's forward or backward pass reads and writes for a batch of `rows`.
pub struct LayerStep {
    /// Samples in the batch.
    pub rows: usize,
    /// Whether the pass trains or evaluates.
    pub mode: Mode,
    /// The shape of one input sample.
    pub input_shape: Shape,
    /// The shape of one output sample.
    pub output_shape: Shape,
    /// The batch's input: `rows` samples of `input_shape`, one after another.
    pub input: Region,
    /// Where the batch's output goes: `rows` samples of `output_shape`, one after another.
    pub output: Region,
    /// The loss gradient with respect to `output`.
    pub grad_output: Region,
    /// Where the gradient with respect to `input` goes; `None` for the first layer (no one needs it).
    pub grad_input: Option<Region>,
    /// The layer's parameters in [`LayerKind::params`] order, and their gradients.
    pub params: Vec<Region>,
    /// The gradients of `params`, one region per parameter in the same order and layout.
    pub param_grads: Vec<Region>,
    /// The layer's state tensors in [`LayerKind::state`] order.
    pub state: Vec<Region>,
    /// What the forward pass leaves for the backward pass ([`LayerKind::saved`]).
    pub saved: Region,
    /// The hyperparameter buffer, whose step count keys random draws ([`LayerKind::uses_step`]).
    pub hyper: Region,
    /// A seed for this layer's random draws, from the model's seed and the layer's index.
    pub seed: u32,
    /// The shared scratch buffers, each as long as this layer needs for `rows` rows ([`LayerKind::scratch`]).
    pub scratch: [Region; 2],
    /// No later layer uses the scratch buffers, so in the backward pass they still hold what this layer's
    /// forward pass left there.
    pub scratch_kept: bool,
    /// The activation a layer that accepts one applies to its output ([`LayerKind::accepts_epilogue`]).
    pub epilogue: Activation,
    /// For an activation layer: who runs it.
    pub fusion: Fusion,
    /// How a conv layer runs on this backend.
    pub conv_algorithm: ConvAlgorithm,
}

/// What the network, the graph and the checkpoint need from a kind of layer.
pub trait LayerKind {
    /// The layer as a token of an `--arch` spec (`dense:128`, `relu`, `leaky_relu:0.01`), which
    /// [`Layer::parse`] reads back; checkpoints list their layers this way.
    fn token(&self) -> String;
    /// Checks the hyper-parameters on their own; the error says what was expected.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    /// The output shape for `input`, or what the layer expected instead.
    fn output_shape(&self, input: Shape) -> Result<Shape, String>;
    /// Parameters in a fixed order; `next` is the layer after this one (its initialiser may depend on it).
    fn params(&self, input: Shape, next: Option<&Layer>) -> Vec<ParamSpec> {
        let _ = (input, next);
        Vec::new()
    }
    /// Floats per sample of the two scratch buffers all layers share (a conv layer's patch matrix and its
    /// product, when it runs as [`ConvAlgorithm::PatchMatrix`]); the workspace holds the largest need.
    fn scratch(&self, input: Shape, output: Shape, conv: ConvAlgorithm) -> [u128; 2] {
        let _ = (input, output, conv);
        [0, 0]
    }
    /// Tensors the layer keeps that are not trained (running statistics), in a fixed order, with
    /// PyTorch's names; saved with the parameters.
    fn state(&self, input: Shape) -> Vec<ParamSpec> {
        let _ = input;
        Vec::new()
    }
    /// Floats the forward pass leaves for the backward pass whatever the batch (a batch's statistics).
    fn saved(&self, input: Shape) -> usize {
        let _ = input;
        0
    }
    /// Checks a training batch of `rows` samples of `input` suits the layer (batch statistics need two
    /// values per channel).
    fn check_batch(&self, input: Shape, rows: usize) -> Result<(), String> {
        let _ = (input, rows);
        Ok(())
    }
    /// Whether the layer reads the training step count (a dropout mask), so every training step must count.
    fn uses_step(&self) -> bool {
        false
    }
    /// Whether the layer works in place: its output and gradient are its input's buffers.
    fn in_place(&self) -> bool {
        false
    }
    /// Whether the layer can apply an elementwise activation to its output in the same op.
    fn accepts_epilogue(&self) -> bool {
        false
    }
    /// The ops of the forward pass.
    fn forward(&self, step: &LayerStep, ops: &mut Vec<Op>);
    /// The ops of the backward pass: parameter gradients, and the input gradient when `grad_input` is set.
    fn backward(&self, step: &LayerStep, ops: &mut Vec<Op>);
}

/// Declares [`Layer`] from the kinds: the only place that lists every kind.
macro_rules! layers {
    ($($(#[$attr:meta])* $variant:ident($kind:ty)),* $(,)?) => {
        /// One layer of a network.
        #[derive(Clone, Copy, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum Layer {
            $($(#[$attr])* $variant($kind)),*
        }

        impl Layer {
            /// The layer as a [`LayerKind`]: the one match over every kind.
            pub fn kind(&self) -> &dyn LayerKind {
                match self {
                    $(Layer::$variant(layer) => layer),*
                }
            }
        }
    };
}

layers! {
    /// A fully connected layer, `input · weights + bias` (`nn.Linear`).
    Dense(Dense),
    /// A 2-D convolution over images (`nn.Conv2d`).
    Conv2d(Conv2d),
    /// The maximum of each window of an image (`nn.MaxPool2d`).
    MaxPool2d(MaxPool2d),
    /// The mean of each window of an image (`nn.AvgPool2d`).
    AvgPool2d(AvgPool2d),
    /// One mean per channel of an image (`nn.AdaptiveAvgPool2d(1)`).
    GlobalAvgPool(GlobalAvgPool),
    /// An image as one row of features, in NCHW order (`nn.Flatten`).
    Flatten(Flatten),
    /// Zeroes values at random while training (`nn.Dropout`).
    Dropout(Dropout),
    /// Normalises each feature or channel (`nn.BatchNorm1d`, `nn.BatchNorm2d`).
    BatchNorm(BatchNorm),
    /// An activation function as a layer of its own (`relu`, `leaky_relu:0.01`, `softmax`, …).
    Activation(Activation),
}

impl fmt::Display for Layer {
    /// The layer's token: `dense:128`, `relu`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind().token())
    }
}

/// A kind's names (the first field of its tokens) and its parser of the fields after the name.
type Parser = (
    &'static [&'static str],
    fn(&str, &[&str]) -> Result<Layer, String>,
);

/// Every kind's parser: registering a kind is adding it here and to [`layers!`].
const PARSERS: [Parser; 9] = [
    (&["dense"], dense::parse),
    (&["conv"], conv2d::parse),
    (&["maxpool"], pool::parse_max),
    (&["avgpool"], pool::parse_avg),
    (&["gap"], pool::parse_gap),
    (&["flatten"], flatten::parse),
    (&["dropout"], dropout::parse),
    (&["batchnorm"], batch_norm::parse),
    (activation::NAMES, activation::parse),
];

impl Layer {
    /// Reads one token of an `--arch` spec (`dense:128`, `relu`); the error names the token and says what
    /// was expected.
    pub fn parse(token: &str) -> Result<Layer, String> {
        let fields: Vec<&str> = token.trim().split(':').map(str::trim).collect();
        let (name, args) = (fields[0], &fields[1..]);
        PARSERS
            .iter()
            .find(|(names, _)| names.contains(&name))
            .map(|(_, parse)| parse(name, args))
            .unwrap_or_else(|| {
                let known: Vec<&str> = PARSERS
                    .iter()
                    .flat_map(|(names, _)| names.iter().copied())
                    .collect();
                Err(format!(
                    "unknown layer kind {}, expected one of {}",
                    crate::error::quote(name),
                    known.join(", ")
                ))
            })
            .map_err(|e| format!("layer {}: {e}", crate::error::quote(token)))
    }

    /// Reads a comma-separated `--arch` spec (`conv:16:3:pad=1,relu,maxpool:2,flatten,dense:10`).
    pub fn parse_spec(spec: &str) -> Result<Vec<Layer>, String> {
        if spec.trim().is_empty() {
            return Err(
                "the spec is empty; expected comma-separated layers such as dense:64,relu,dense:3"
                    .into(),
            );
        }
        spec.split(',')
            .enumerate()
            .map(|(i, token)| {
                if token.trim().is_empty() {
                    Err(format!(
                        "layer {i} of the spec is empty (two commas in a row, or one at an end)"
                    ))
                } else {
                    Layer::parse(token)
                }
            })
            .collect()
    }

    /// The activation, when this is an activation layer.
    pub fn activation(&self) -> Option<Activation> {
        match *self {
            Layer::Activation(a) => Some(a),
            _ => None,
        }
    }
}

/// A whole number field of a token (`16` in `conv:16:3`), at least `min`.
pub(crate) fn whole(what: &str, text: &str, min: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= min && n <= MAX_WIDTH => Ok(n),
        _ => Err(format!(
            "{what} must be a whole number from {min} to {MAX_WIDTH}, got {}",
            crate::error::quote(text)
        )),
    }
}

/// The `name=value` options after a token's positional fields, each name at most once and among `known`.
pub(crate) fn options<'a>(
    args: &[&'a str],
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut found: Vec<(&str, &str)> = Vec::new();
    for arg in args {
        let Some((name, value)) = arg.split_once('=').map(|(n, v)| (n.trim(), v.trim())) else {
            return Err(format!(
                "expected an option such as {}=N, got {}",
                known[0],
                crate::error::quote(arg)
            ));
        };
        if !known.contains(&name) {
            return Err(format!(
                "unknown option {}, expected {}",
                crate::error::quote(name),
                known.join(" or ")
            ));
        }
        if found.iter().any(|(n, _)| *n == name) {
            return Err(format!("option {name} is given twice"));
        }
        found.push((name, value));
    }
    Ok(found)
}
