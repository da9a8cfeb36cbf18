//! `--arch` and `--input-shape`: a network written as layer tokens, for `train` and `summary`. The spec's
//! last `dense:N` is the output layer; its activation and the loss come from `--output` and `--loss`.

use crate::train::invalid;
use std::path::Path;
use wgtrain::{Activation, Error, Layer, Loss, Network, Result, Shape};

/// The longest `@FILE` spec read.
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// The layers of `--arch SPEC` (or of the file `@FILE`: tokens separated by commas or newlines, `#` starting
/// a comment line). The spec must end with the output layer, `dense:N`.
pub fn read_spec(text: &str) -> Result<Vec<Layer>> {
    let spec = match text.strip_prefix('@') {
        Some(path) => {
            let path = Path::new(path);
            let in_arch = |e: Error| invalid("--arch", e.to_string());
            let meta = wgtrain::files::regular_file(path, "a file holding the --arch spec")
                .map_err(in_arch)?;
            if meta.len() > MAX_SPEC_BYTES {
                return Err(invalid(
                    "--arch",
                    format!(
                        "{} holds {} bytes, more than the {MAX_SPEC_BYTES} a spec may have",
                        path.display(),
                        meta.len()
                    ),
                ));
            }
            let bytes = std::fs::read(path)
                .map_err(|e| invalid("--arch", format!("@{}: {e}", path.display())))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| invalid("--arch", format!("{} is not UTF-8 text", path.display())))?;
            text.trim_start_matches('\u{feff}')
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .flat_map(|l| l.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        }
        None => text.to_string(),
    };
    let layers = Layer::parse_spec(&spec).map_err(|e| invalid("--arch", e))?;
    match layers.last() {
        Some(Layer::Dense(_)) => Ok(layers),
        Some(last) => Err(invalid(
            "--arch",
            format!(
                "the spec must end with the output layer dense:N, got {last} (the output activation comes from --output)"
            ),
        )),
        None => Err(invalid("--arch", "the spec is empty".into())),
    }
}

/// `--input-shape C,H,W` for images, or `T,D` for sequences (positions, features).
pub fn parse_input_shape(text: &str) -> Result<Shape> {
    let dims: Vec<usize> = text
        .split(',')
        .map(|d| d.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .ok()
        .filter(|d: &Vec<usize>| {
            (d.len() == 2 || d.len() == 3)
                && d.iter().all(|&v| (1..=wgtrain::network::MAX_WIDTH).contains(&v))
        })
        .ok_or_else(|| {
            invalid(
                "--input-shape",
                format!(
                    "expected C,H,W (channels, height, width, e.g. 1,28,28) or T,D (positions, features, e.g. 8,16), whole numbers >= 1, got {}",
                    wgtrain::error::quote(text)
                ),
            )
        })?;
    Ok(match dims[..] {
        [positions, features] => Shape::Sequence {
            positions,
            features,
        },
        _ => Shape::Image {
            channels: dims[0],
            height: dims[1],
            width: dims[2],
        },
    })
}

/// The outputs of the spec's last layer (`dense:N`).
pub fn outputs(layers: &[Layer]) -> usize {
    match layers.last() {
        Some(Layer::Dense(d)) => d.units,
        _ => 0,
    }
}

/// The network of `layers` on `input`, with the output activation after the last layer; `outputs` is what
/// the data needs, which the last `dense:N` must give.
pub fn network(
    input: Shape,
    layers: &[Layer],
    output: Activation,
    outputs: usize,
    loss: Loss,
) -> Result<Network> {
    let given = self::outputs(layers);
    if given != outputs {
        return Err(invalid(
            "--arch",
            format!(
                "the output layer dense:{given} gives {given} outputs, this data needs {outputs}"
            ),
        ));
    }
    let mut builder = Network::builder_for(input);
    for &layer in layers {
        builder = builder.layer(layer);
    }
    if output != Activation::Linear {
        builder = builder.layer(Layer::Activation(output));
    }
    builder.build(loss).map_err(|e| match e {
        Error::InvalidNetwork(message) => invalid("--arch", message),
        other => other,
    })
}

/// The shape one sample of the data has: `--input-shape` (which must hold the data's `cols` values), the
/// image size of IDX data, else a row of `cols`.
pub fn input_shape(
    flag: Option<Shape>,
    idx_image: Option<(usize, usize)>,
    cols: usize,
) -> Result<Shape> {
    match (flag, idx_image) {
        (Some(shape), _) if shape.len() != cols as u128 => Err(invalid(
            "--input-shape",
            format!(
                "{shape} holds {} values, the data has {cols} per sample",
                shape.len()
            ),
        )),
        (Some(shape), _) => Ok(shape),
        (None, Some((height, width))) => Ok(Shape::Image {
            channels: 1,
            height,
            width,
        }),
        (None, None) => Ok(Shape::Flat(cols)),
    }
}

/// `"64,32"` → `[64, 32]`; `""` → no hidden layer.
pub fn parse_layers(text: &str) -> Result<Vec<usize>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .enumerate()
        .map(|(i, part)| match part.trim().parse::<usize>() {
            Ok(0) => Err(invalid(
                "--layers",
                format!("layer {} width must be at least 1, got 0", i + 1),
            )),
            Ok(width) if width > wgtrain::network::MAX_WIDTH => Err(invalid(
                "--layers",
                format!(
                    "layer {} width must be at most {}, got {width}",
                    i + 1,
                    wgtrain::network::MAX_WIDTH
                ),
            )),
            Ok(width) => Ok(width),
            Err(_) => Err(invalid(
                "--layers",
                format!(
                    "layer {} width must be a whole number from 1 to {}, got {}",
                    i + 1,
                    wgtrain::network::MAX_WIDTH,
                    wgtrain::error::quote(part.trim())
                ),
            )),
        })
        .collect()
}

/// The hidden layers' activation: `--activation`, relu by default. Naming one for a network without
/// hidden layers, or softmax (an output activation), is an error rather than a flag that does nothing.
pub fn hidden_activation(chosen: Option<Activation>, hidden: &[usize]) -> Result<Activation> {
    match chosen {
        Some(Activation::Softmax) => Err(invalid(
            "--activation",
            "softmax is only allowed on the output layer (see --output)".into(),
        )),
        Some(a) if hidden.is_empty() => Err(invalid(
            "--activation",
            format!("{a} applies to hidden layers, and --layers \"\" has none (the output layer's is --output)"),
        )),
        chosen => Ok(chosen.unwrap_or(Activation::Relu)),
    }
}

/// `784 → dense:128, relu, dense:10, softmax (ce)`.
pub fn network_shape(network: &Network) -> String {
    let layers: Vec<String> = network.layers().iter().map(|l| l.to_string()).collect();
    format!(
        "{} → {} ({})",
        network.input_shape(),
        layers.join(", "),
        network.loss()
    )
}
