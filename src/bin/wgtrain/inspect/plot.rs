//! `wgtrain inspect --plot`: a layer's weights as pictures, one tile per neuron or filter where its inputs
//! are an image, else a heat map (drawn by `wgtrain::plot::tiles`).

use super::{dims, Context, Inputs, Limit, Weighted};
use wgtrain::layers::Layer;
use wgtrain::plot::tiles::{self, TileLayout};
use wgtrain::Result;

/// Neurons drawn at most in one picture: a 16 × 16 grid.
const MAX_DRAWN: usize = 256;
/// Inputs of a heat map up to which their names are worked out for its labels (the picture labels them
/// only where its cells are tall enough for text).
const MAX_LABELS: usize = 64;
/// Longest input name on a heat map's side, in characters.
const LABEL_CHARS: usize = 24;

/// Draws `layer`'s weights at `path`; returns a note for the message that says so.
pub(super) fn draw(
    path: &std::path::Path,
    context: &Context,
    layer: &Weighted,
    limit: Option<Limit>,
) -> Result<String> {
    let wanted = limit.and_then(|l| l.0).unwrap_or(layer.units);
    let drawn = wanted.min(layer.units).clamp(1, MAX_DRAWN);
    let units: Vec<Vec<f32>> = (0..drawn)
        .map(|j| tiles::scaled(&layer.column(j)))
        .collect();
    let (inputs, _, _) = context.inputs_of(layer.index);
    let shape = match (layer.layer, inputs) {
        (Layer::Conv2d(c), _) => Some([layer.fan_in / (c.kernel * c.kernel), c.kernel, c.kernel]),
        (_, Inputs::Image { shape, .. }) => Some(shape),
        _ => None,
    };
    let unit = if matches!(layer.layer, Layer::Conv2d(_)) {
        "filter"
    } else {
        "neuron"
    };
    let count = match (drawn < layer.units, drawn) {
        (true, _) => format!("the first {drawn} of {} {unit}s", layer.units),
        (false, 1) => format!("1 {unit}"),
        (false, _) => format!("{drawn} {unit}s"),
    };
    let name = format!("layer {} {}", layer.index, layer.layer);
    let titles = |what: &str| {
        vec![
            format!(
                "{name}, {count}: weights{what} (blue −, red +, each scaled to its largest |w|)"
            ),
            format!("{name}, {count}: weights{what}"),
            format!("{name}, {count}"),
            format!("{name}: weights"),
            name.clone(),
        ]
    };
    match shape {
        Some([channels, height, width]) => {
            let layout = TileLayout::new(drawn, channels, height, width);
            let what = format!(" on {}", dims([channels, height, width]));
            tiles::weight_tiles(path, &titles(&what), &layout, &units)?;
        }
        None => {
            let names: Vec<String> = if layer.fan_in <= MAX_LABELS {
                (0..layer.fan_in)
                    .map(|i| inputs.name(i).chars().take(LABEL_CHARS).collect())
                    .collect()
            } else {
                Vec::new()
            };
            tiles::weight_heatmap(path, &titles(", inputs down"), &names, &units)?;
        }
    }
    Ok(if drawn < layer.units {
        format!(" ({count})")
    } else {
        String::new()
    })
}
