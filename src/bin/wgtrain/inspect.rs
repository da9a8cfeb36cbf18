//! `wgtrain inspect`: what the hidden layers detect. A neuron computes `activation(input · weights + bias)`,
//! so it responds most to the inputs it weighs most: for every hidden dense neuron and conv filter this
//! prints the inputs with the largest |weight|, signed, named by the model's feature names (pixels by their
//! position), and `--plot` draws a layer's weights as pictures (see `wgtrain::plot::tiles`).

use crate::arch;
use clap::Args;
use std::path::PathBuf;
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::data::Task;
use wgtrain::layers::{Layer, Shape};
use wgtrain::network::{LayerParams, Network};
use wgtrain::{Error, Result};

mod plot;

#[derive(Args, Clone, Debug)]
pub struct InspectArgs {
    /// A model saved by `wgtrain train --out`
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs listed per neuron: those it weighs most (largest |weight|), with their signed weights
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub top: usize,
    /// Neurons (conv filters) listed per layer and drawn, the first ones, or `all` [default: 32 listed,
    /// every one drawn; at most 256 are drawn]
    #[arg(long, value_parser = parse_limit)]
    pub neurons: Option<Limit>,
    /// Only this layer: a dense or conv layer by its index, as `wgtrain summary` and the checkpoint's
    /// `layers.{i}` number it [default: every hidden dense and conv layer]; --plot then draws it
    #[arg(long)]
    pub layer: Option<usize>,
    /// Read a flat model's inputs as images of this shape, C,H,W [default: the model's input shape; for
    /// inputs named pixel0…pixelN-1 (IDX images) with N a square, 1,√N,√N]
    #[arg(long)]
    pub input_shape: Option<String>,
    /// Draw the first dense or conv layer's weights (or --layer's) here (PNG): one tile per neuron or
    /// filter and input channel when its inputs are an image, else a heat map of inputs by neurons; blue
    /// negative, white zero, red positive, each neuron scaled to its largest |weight|
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// How many neurons to list per layer and draw; `None` for all.
#[derive(Clone, Copy, Debug)]
pub struct Limit(Option<usize>);

/// Neurons listed per layer unless `--neurons` says otherwise.
const LISTED: usize = 32;

fn parse_limit(text: &str) -> std::result::Result<Limit, String> {
    match text.trim() {
        "all" => Ok(Limit(None)),
        n => n.parse().map(|n| Limit(Some(n))).map_err(|_| {
            format!(
                "expected a whole number or `all`, got {}",
                wgtrain::error::quote(text)
            )
        }),
    }
}

fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number >= 1, got {}",
            wgtrain::error::quote(text)
        )),
    }
}

fn invalid(what: &str, message: String) -> Error {
    Error::InvalidValue {
        what: what.into(),
        message,
    }
}

/// A dense or conv layer: its weights are `[fan_in, units]`, row-major (PyTorch's `[units, fan_in…]`
/// transposed), so unit `j`'s weights are column `j`.
struct Weighted<'a> {
    index: usize,
    layer: Layer,
    params: &'a LayerParams,
    /// Neurons, or a conv layer's filters.
    units: usize,
    fan_in: usize,
    /// Its place among the model's dense and conv layers, from 1: hidden layer `n` unless it is the last.
    number: usize,
}

impl Weighted<'_> {
    /// Unit `j`'s weights, one per input (a conv filter's in channel, row, column order).
    fn column(&self, j: usize) -> Vec<f32> {
        let w = &self.params.weights;
        (0..self.fan_in).map(|i| w[i * self.units + j]).collect()
    }
}

/// What a layer's inputs are, to name them.
#[derive(Clone, Copy, Debug)]
enum Inputs<'a> {
    /// The model's input columns by name (`x{i}` where the checkpoint has none).
    Features(&'a [String]),
    /// An image, `[channels, height, width]`: the model's input (`px(row,col)`, or `c{k}(row,col)` with
    /// several channels) or a hidden layer's feature maps (`c{k}(row,col)`).
    Image { shape: [usize; 3], input: bool },
    /// The neurons of hidden layer `number`, `h{number}.{j}`.
    Neurons { number: usize },
    /// One value per channel (global average pooling's means), `c{k}`.
    Channels,
    /// The features of a sequence, the same at every position (a dense layer over `[T, d]`), `d{k}`.
    PerPosition,
}

impl Inputs<'_> {
    fn name(&self, i: usize) -> String {
        match *self {
            Inputs::Features(names) => names.get(i).map_or(format!("x{i}"), |n| shown(n)),
            Inputs::Image { shape, input } => {
                position(i, shape, Some(if input { "px" } else { "c0" }))
            }
            Inputs::Neurons { number } => format!("h{number}.{i}"),
            Inputs::Channels => format!("c{i}"),
            Inputs::PerPosition => format!("d{i}"),
        }
    }
}

/// Input `i` of a `[channels, height, width]` image: `prefix(row,col)` with one channel (`(row,col)`
/// without one, a kernel's taps), else `c{k}(row,col)`.
fn position(i: usize, [channels, height, width]: [usize; 3], one: Option<&str>) -> String {
    let (k, rest) = (i / (height * width), i % (height * width));
    let (row, col) = (rest / width, rest % width);
    match (channels, one) {
        (1, Some(prefix)) => format!("{prefix}({row},{col})"),
        (1, None) => format!("({row},{col})"),
        _ => format!("c{k}({row},{col})"),
    }
}

/// A name as it can be printed on one line: control characters escaped.
fn shown(name: &str) -> String {
    let escaped = |c: char| match c.is_control() {
        true => c.escape_default().to_string(),
        false => c.to_string(),
    };
    name.chars().map(escaped).collect()
}

/// A weight with its sign and four significant figures or so: `+0.312`, `-1.250`, `+3.10e-5`.
fn signed(w: f32) -> String {
    let a = w.abs();
    if a == 0.0 || (1e-3..1e4).contains(&a) {
        format!("{w:+.3}")
    } else {
        format!("{w:+.2e}")
    }
}

/// The `k` largest weights by magnitude as `(input, weight)`, largest first; equal magnitudes in input
/// order.
fn top_k(weights: &[f32], k: usize) -> Vec<(usize, f32)> {
    let order = |&a: &usize, &b: &usize| {
        weights[b]
            .abs()
            .total_cmp(&weights[a].abs())
            .then(a.cmp(&b))
    };
    let mut inputs: Vec<usize> = (0..weights.len()).collect();
    let k = k.min(inputs.len());
    if k == 0 {
        return Vec::new();
    }
    if k < inputs.len() {
        inputs.select_nth_unstable_by(k - 1, order);
        inputs.truncate(k);
    }
    inputs.sort_unstable_by(order);
    inputs.into_iter().map(|i| (i, weights[i])).collect()
}

pub fn run(args: &InspectArgs) -> Result<()> {
    if let Some(path) = &args.plot {
        crate::checks::check_output("--plot", path, "png", &[("--model", &args.model)])?;
    }
    let (network, params, meta) = checkpoint::load(&args.model)?;
    let image = input_image(&network, &meta, args.input_shape.as_deref())?;
    let weighted = weighted_layers(&network, &params);
    let Some(last) = weighted.last() else {
        return Err(invalid(
            "--model",
            format!(
                "{} has no dense or conv layer, so no weights to inspect",
                args.model.display()
            ),
        ));
    };
    let no_hidden = args.layer.is_none() && weighted.len() == 1;
    let listed: Vec<&Weighted> = match args.layer {
        Some(i) => vec![find_layer(&network, &weighted, i)?],
        None if no_hidden => vec![last],
        None => weighted[..weighted.len() - 1].iter().collect(),
    };
    let context = Context {
        network: &network,
        meta: &meta,
        image,
        weighted: &weighted,
    };
    // Drawn first, so a picture too large to draw is an error before anything is printed.
    let plotted = match &args.plot {
        Some(path) => {
            let layer = if args.layer.is_some() {
                listed[0]
            } else {
                &weighted[0]
            };
            Some((path, plot::draw(path, &context, layer, args.neurons)?))
        }
        None => None,
    };
    say!("{}", describe_model(&args.model, &network, &meta, image))?;
    if no_hidden {
        say!(
            "no hidden layer: layer {} ({}) maps the inputs straight to the outputs; its output neurons:",
            last.index,
            last.layer
        )?;
    }
    for layer in listed {
        print_layer(&context, layer, args)?;
    }
    if let Some((path, note)) = plotted {
        say!("")?;
        say!("plot written to {}{note}", path.display())?;
    }
    Ok(())
}

/// The model and how the inputs are read.
struct Context<'a> {
    network: &'a Network,
    meta: &'a ModelMeta,
    /// The input as an image, when it is one (or is read as one).
    image: Option<[usize; 3]>,
    weighted: &'a [Weighted<'a>],
}

impl Context<'_> {
    /// What layer `i`'s inputs are, what they are in words and how they are named: the model's input,
    /// or the output of the nearest layer before it that is not an activation, dropout, batch norm or
    /// flatten (those keep their inputs' order).
    fn inputs_of(&self, i: usize) -> (Inputs<'_>, String, String) {
        let layers = self.network.layers();
        if let Shape::Sequence {
            positions,
            features,
        } = self.network.input_of(i)
        {
            return (
                Inputs::PerPosition,
                format!("the {features} features at each of {positions} positions"),
                "d{k} (feature k at every position)".into(),
            );
        }
        let source = (0..i).rev().find(|&j| {
            !matches!(
                layers[j],
                Layer::Activation(_) | Layer::Dropout(_) | Layer::BatchNorm(_) | Layer::Flatten(_)
            )
        });
        let Some(j) = source else {
            return match self.image {
                Some(shape) => (
                    Inputs::Image { shape, input: true },
                    format!("the {} input image", dims(shape)),
                    if shape[0] == 1 {
                        "pixels px(row,col)".into()
                    } else {
                        "pixels c{k}(row,col) of channel k".into()
                    },
                ),
                None => (
                    Inputs::Features(&self.meta.feature_names),
                    format!("the {} input features", self.network.inputs()),
                    if self.meta.feature_names.is_empty() {
                        "x{i}".into()
                    } else {
                        "by name".into()
                    },
                ),
            };
        };
        let from = format!("layer {j} ({})", layers[j]);
        match (layers[j], self.network.shapes()[j]) {
            (Layer::Dense(d), _) => {
                let number = self.number_of(j);
                (
                    Inputs::Neurons { number },
                    format!("the {} neurons of {from}", d.units),
                    format!("h{number}.j"),
                )
            }
            // One value per channel (global average pooling): named by the channel alone.
            (
                _,
                Shape::Image {
                    channels,
                    height: 1,
                    width: 1,
                },
            ) => (
                Inputs::Channels,
                format!("the {channels} channels of {from}"),
                "c{k}".into(),
            ),
            (
                _,
                Shape::Image {
                    channels,
                    height,
                    width,
                },
            ) => {
                let shape = [channels, height, width];
                (
                    Inputs::Image {
                        shape,
                        input: false,
                    },
                    format!("the {} maps of {from}", dims(shape)),
                    "c{k}(row,col) of channel k".into(),
                )
            }
            (_, shape) => (
                Inputs::Channels,
                format!("the {shape} outputs of {from}"),
                "c{k}".into(),
            ),
        }
    }

    /// Layer `j`'s place among the dense and conv layers, from 1.
    fn number_of(&self, j: usize) -> usize {
        self.weighted
            .iter()
            .find(|w| w.index == j)
            .map_or(0, |w| w.number)
    }

    /// A label for output neuron `j` of the last layer: its class or the target.
    fn output_label(&self, layer: &Weighted, j: usize) -> String {
        let last = self.weighted.last().map(|w| w.index) == Some(layer.index);
        let meta = self.meta;
        match meta.task {
            Task::Classify if last && meta.class_names.len() == layer.units => {
                format!(" (class {})", shown(&meta.class_names[j]))
            }
            Task::Regress if last && !meta.target.is_empty() => {
                format!(" ({})", shown(&meta.target))
            }
            _ => String::new(),
        }
    }
}

fn dims([c, h, w]: [usize; 3]) -> String {
    format!("{c}x{h}x{w}")
}

/// The input as an image: the model's input shape, `--input-shape`, or for IDX pixel names
/// (`pixel0`…`pixelN−1`, N a square) a square image of one channel.
fn input_image(
    network: &Network,
    meta: &ModelMeta,
    flag: Option<&str>,
) -> Result<Option<[usize; 3]>> {
    let given = flag.map(arch::parse_input_shape).transpose()?;
    if let Some(shape @ Shape::Sequence { .. }) = given {
        return Err(invalid(
            "--input-shape",
            format!("reads the inputs as images, C,H,W; got the sequence {shape}"),
        ));
    }
    let as_array = |shape: Shape| match shape {
        Shape::Image {
            channels,
            height,
            width,
        } => Some([channels, height, width]),
        _ => None,
    };
    let given = given.and_then(as_array);
    if let Some(model) = as_array(network.input_shape()) {
        return match given {
            Some(shape) if shape != model => Err(invalid(
                "--input-shape",
                format!(
                    "{} differs from the model's input shape {}",
                    dims(shape),
                    dims(model)
                ),
            )),
            _ => Ok(Some(model)),
        };
    }
    let inputs = network.inputs();
    if let Some(shape) = given {
        if shape.iter().map(|&d| d as u128).product::<u128>() != inputs as u128 {
            return Err(invalid(
                "--input-shape",
                format!(
                    "{} holds {} values, the model has {inputs} inputs",
                    dims(shape),
                    shape.iter().map(|&d| d as u128).product::<u128>()
                ),
            ));
        }
        return Ok(Some(shape));
    }
    let side = (inputs as f64).sqrt().round() as usize;
    let idx_names = meta.feature_names.len() == inputs
        && meta
            .feature_names
            .iter()
            .enumerate()
            .all(|(i, n)| n.strip_prefix("pixel") == Some(i.to_string().as_str()));
    Ok((idx_names && side * side == inputs && inputs > 1).then_some([1, side, side]))
}

/// Every dense and conv layer with its parameters, in order.
fn weighted_layers<'a>(network: &Network, params: &'a [LayerParams]) -> Vec<Weighted<'a>> {
    let parametrised = network.parametrised_layers();
    let mut found = Vec::new();
    for (p, &i) in parametrised.iter().enumerate() {
        let layer = network.layers()[i];
        // Over a sequence a dense layer's weights see one position's features.
        let (_, fan_in) = network.input_of(i).positions_and_features();
        let (units, fan_in) = match (layer, network.input_of(i)) {
            (Layer::Dense(d), _) => (d.units, fan_in),
            (Layer::Conv2d(c), Shape::Image { channels, .. }) => {
                (c.out_channels, channels * c.kernel * c.kernel)
            }
            _ => continue,
        };
        found.push(Weighted {
            index: i,
            layer,
            params: &params[p],
            units,
            fan_in,
            number: found.len() + 1,
        });
    }
    found
}

/// The dense or conv layer with index `i`, or an error naming the ones there are.
fn find_layer<'a, 'b>(
    network: &Network,
    weighted: &'b [Weighted<'a>],
    i: usize,
) -> Result<&'b Weighted<'a>> {
    if let Some(w) = weighted.iter().find(|w| w.index == i) {
        return Ok(w);
    }
    let there: Vec<String> = weighted.iter().map(|w| w.index.to_string()).collect();
    let what = match network.layers().get(i) {
        Some(layer) => format!("layer {i} is {layer}, which has no weights to list"),
        None => format!(
            "the model has layers 0 to {}, not {i}",
            network.layers().len() - 1
        ),
    };
    Err(invalid(
        "--layer",
        format!("{what}; its dense and conv layers are {}", there.join(", ")),
    ))
}

/// `model.safetensors: 784 inputs read as 1x28x28 images; dense:128,relu,dense:10,softmax`.
fn describe_model(
    path: &std::path::Path,
    network: &Network,
    meta: &ModelMeta,
    image: Option<[usize; 3]>,
) -> String {
    let tokens: Vec<String> = network.layers().iter().map(ToString::to_string).collect();
    let inputs = match (image, network.input_shape()) {
        (_, Shape::Image { .. }) => format!("{} input images", network.input_shape()),
        (_, Shape::Sequence { .. }) => format!("input sequences of {}", network.input_shape()),
        (Some(shape), _) => format!("{} inputs read as {} images", network.inputs(), dims(shape)),
        (None, _) if meta.feature_names.is_empty() => format!("{} inputs", network.inputs()),
        (None, _) => format!("{} input features", network.inputs()),
    };
    format!("{}: {inputs}; {}", path.display(), tokens.join(","))
}

/// One layer: a header line, then a line per neuron (up to `--neurons`) with its bias and top inputs.
fn print_layer(context: &Context, layer: &Weighted, args: &InspectArgs) -> Result<()> {
    let network = context.network;
    let (inputs, what, naming) = context.inputs_of(layer.index);
    let activation = network
        .layers()
        .get(layer.index + 1)
        .and_then(Layer::activation)
        .map_or(String::new(), |a| format!(" → {a}"));
    let last = context.weighted.last().map(|w| w.index) == Some(layer.index);
    let role = if last {
        "the output layer".to_string()
    } else {
        format!("hidden layer {}", layer.number)
    };
    let (unit, summary) = match layer.layer {
        Layer::Conv2d(c) => {
            let channels = layer.fan_in / (c.kernel * c.kernel);
            let taps = if channels == 1 {
                "taps (row,col) of the kernel"
            } else {
                "taps c{k}(row,col) on channel k"
            };
            (
                "filter",
                format!(
                    "{} filters of {}x{}x{} over {what}, {taps}",
                    c.out_channels, channels, c.kernel, c.kernel
                ),
            )
        }
        _ => (
            "neuron",
            format!("{} neurons over {what}, {naming}", layer.units),
        ),
    };
    say!("")?;
    say!(
        "layer {} {}{activation}, {role}: {summary}",
        layer.index,
        layer.layer
    )?;
    let listed = args.neurons.map_or(Some(LISTED), |l| l.0);
    let shown_units = listed.map_or(layer.units, |n| n.min(layer.units));
    let name = |i: usize| match layer.layer {
        Layer::Conv2d(c) => {
            let channels = layer.fan_in / (c.kernel * c.kernel);
            position(i, [channels, c.kernel, c.kernel], None)
        }
        _ => inputs.name(i),
    };
    let mut rows = Vec::with_capacity(shown_units);
    for j in 0..shown_units {
        let weights = layer.column(j);
        let mut head = vec![
            format!("{unit} {j}{}", context.output_label(layer, j)),
            format!("bias {}", signed(layer.params.bias[j])),
        ];
        if unit == "filter" {
            let norm = weights.iter().map(|w| w * w).sum::<f32>().sqrt();
            head.push(format!("|w| {norm:.3}"));
        }
        let top = top_k(&weights, args.top)
            .into_iter()
            .map(|(i, w)| format!("{} {}", name(i), signed(w)));
        rows.push(head.into_iter().chain(top).collect::<Vec<String>>());
    }
    // Aligned columns: each as wide as its widest cell.
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        say!("  {}", cells.join("  ").trim_end())?;
    }
    if shown_units < layer.units {
        let more = layer.units - shown_units;
        let plural = if more == 1 { "" } else { "s" };
        say!("  … {more} more {unit}{plural} (--neurons all lists every one)")?;
    }
    Ok(())
}
