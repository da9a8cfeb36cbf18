//! A layer's weights drawn as pictures (`wgtrain inspect --plot`): a neuron that weighs an image's pixels
//! is itself an image of what it looks for, so each neuron (or conv filter) is one tile of its weights, a
//! weight per cell, blue below zero, white at zero, red above. Where the inputs are not an image, the
//! weights are one heat map instead, inputs down and neurons across. Values arrive scaled to [−1, 1];
//! the caller chooses the scale (per neuron, so a neuron with small weights still shows its pattern).

use super::{plot_error, register_font, save_png};
use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// About how many pixels a tile spans along its longer side (an integer multiple of its cells).
pub const TILE: usize = 56;
/// Pixels between two neurons' tiles, and between a neuron's channels.
pub const GAP: usize = 6;
pub const CHANNEL_GAP: usize = 2;
/// Pixels around the grid, and the band above it that holds the title.
pub const MARGIN: usize = 8;
pub const TITLE_BAND: usize = 24;
/// The longest side of a picture, in pixels.
pub const MAX_SIDE: u128 = 8192;
/// The narrowest heat map, in pixels.
pub const HEATMAP_WIDTH: usize = 240;

const BACKGROUND: [u8; 3] = [224, 224, 224];
/// The ends of the colour map (ColorBrewer's RdBu): −1 and +1; 0 is white.
const NEGATIVE: [f32; 3] = [33.0, 102.0, 172.0];
const POSITIVE: [f32; 3] = [178.0, 24.0, 43.0];

/// The colour of a value in [−1, 1] (clamped): white at 0, towards blue below and red above.
pub fn diverging(value: f32) -> [u8; 3] {
    let t = if value.is_nan() {
        0.0
    } else {
        value.clamp(-1.0, 1.0)
    };
    let end = if t < 0.0 { NEGATIVE } else { POSITIVE };
    end.map(|e| (255.0 + (e - 255.0) * t.abs()).round() as u8)
}

/// `values` divided by their largest magnitude, so the largest is ±1; all zeros stay zeros.
pub fn scaled(values: &[f32]) -> Vec<f32> {
    let max = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return vec![0.0; values.len()];
    }
    values.iter().map(|v| v / max).collect()
}

/// Where the tiles of `units` neurons go: each neuron is `channels` tiles of `height × width` cells side
/// by side, each cell `scale` pixels square, and the neurons fill a grid of `columns`, row by row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileLayout {
    pub units: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Pixels per cell along each side: `max(1, TILE / max(height, width))`.
    pub scale: usize,
    /// The fewest that make the grid at least as wide as tall (`⌈√units⌉` for square tiles).
    pub columns: usize,
    pub rows: usize,
}

impl TileLayout {
    pub fn new(units: usize, channels: usize, height: usize, width: usize) -> TileLayout {
        let scale = (TILE / height.max(width).max(1)).max(1);
        let mut layout = TileLayout {
            units,
            channels,
            height,
            width,
            scale,
            columns: 1,
            rows: 1,
        };
        // The fewest columns that make the grid at least as wide as it is tall: c² · unit width ≥
        // units · unit height.
        let (unit_width, unit_height) = layout.unit_size();
        let columns = (1..units)
            .find(|&c| (c as u128).pow(2) * unit_width >= units as u128 * unit_height)
            .unwrap_or(units);
        layout.columns = columns.max(1);
        layout.rows = units.div_ceil(layout.columns).max(1);
        layout
    }

    /// Width and height of one neuron's tiles, in pixels.
    fn unit_size(&self) -> (u128, u128) {
        let (channels, scale) = (self.channels as u128, self.scale as u128);
        let width = channels * self.width as u128 * scale + (channels - 1) * CHANNEL_GAP as u128;
        (width, self.height as u128 * scale)
    }

    /// The picture's width and height in pixels: `2·MARGIN + columns·unit_width + (columns − 1)·GAP`
    /// across (`unit_width = channels·width·scale + (channels − 1)·CHANNEL_GAP`), and
    /// `TITLE_BAND + 2·MARGIN + rows·height·scale + (rows − 1)·GAP` down. Exact for any sizes.
    pub fn size(&self) -> (u128, u128) {
        let (unit_width, unit_height) = self.unit_size();
        let (columns, rows) = (self.columns as u128, self.rows as u128);
        let (margin, gap) = (MARGIN as u128, GAP as u128);
        (
            2 * margin + columns * unit_width + (columns - 1) * gap,
            TITLE_BAND as u128 + 2 * margin + rows * unit_height + (rows - 1) * gap,
        )
    }

    /// The top-left pixel of neuron `unit`'s tile for `channel`.
    pub fn origin(&self, unit: usize, channel: usize) -> (usize, usize) {
        let (unit_width, unit_height) = self.unit_size();
        let (row, column) = (unit / self.columns, unit % self.columns);
        let x = MARGIN
            + column * (unit_width as usize + GAP)
            + channel * (self.width * self.scale + CHANNEL_GAP);
        (x, TITLE_BAND + MARGIN + row * (unit_height as usize + GAP))
    }
}

/// An RGB picture being drawn: cells are filled directly, the title goes through plotters' text.
struct Canvas {
    rgb: Vec<u8>,
    width: usize,
    height: usize,
}

impl Canvas {
    /// A blank picture for `path`, refused with a message naming `what` (and what to do, `hint`) when a
    /// side is over [`MAX_SIDE`].
    fn new(path: &Path, size: (u128, u128), what: &str, hint: &str) -> Result<Canvas> {
        if size.0 > MAX_SIDE || size.1 > MAX_SIDE {
            return Err(Error::file(
                path,
                format!(
                    "{what} would make a picture of {}x{} pixels, more than {MAX_SIDE} a side{hint}",
                    size.0, size.1
                ),
            ));
        }
        let (width, height) = (size.0 as usize, size.1 as usize);
        Ok(Canvas {
            rgb: BACKGROUND.repeat(width * height),
            width,
            height,
        })
    }

    /// Fills the `width × height` pixels at `(x, y)` with `value`'s colour.
    fn cell(&mut self, (x, y): (usize, usize), (width, height): (usize, usize), value: f32) {
        let colour = diverging(value);
        for row in y..y + height {
            let start = (row * self.width + x) * 3;
            for pixel in self.rgb[start..start + width * 3].chunks_exact_mut(3) {
                pixel.copy_from_slice(&colour);
            }
        }
    }

    /// Draws the first of `titles` that fits the title band's width (none when none fits), then `text`
    /// (labels, their anchors at the pixel given), and writes the PNG.
    fn save(mut self, path: &Path, titles: &[String], text: &[(String, (i32, i32))]) -> Result<()> {
        register_font()?;
        let size = (self.width as u32, self.height as u32);
        {
            let root = BitMapBackend::with_buffer(&mut self.rgb, size).into_drawing_area();
            let style = ("sans-serif", 15).into_font().color(&BLACK);
            let room = self.width.saturating_sub(2 * MARGIN) as u32;
            for title in titles {
                let (w, _) = root
                    .estimate_text_size(title, &style)
                    .map_err(|e| plot_error(path, e))?;
                if w <= room {
                    root.draw(&Text::new(title.clone(), (MARGIN as i32, 5), &style))
                        .map_err(|e| plot_error(path, e))?;
                    break;
                }
            }
            let label = ("sans-serif", 12)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            for (words, at) in text {
                root.draw(&Text::new(words.clone(), *at, &label))
                    .map_err(|e| plot_error(path, e))?;
            }
            root.present().map_err(|e| plot_error(path, e))?;
        }
        save_png(path, &self.rgb, size)
    }
}

/// Draws one tile per neuron and channel into a PNG at `path`, laid out by `layout`; `units[u]` holds
/// neuron `u`'s `channels × height × width` values in [−1, 1], channel by channel, row by row. The title is
/// the first of `titles` that fits the picture's width.
pub fn weight_tiles(
    path: &Path,
    titles: &[String],
    layout: &TileLayout,
    units: &[Vec<f32>],
) -> Result<()> {
    let what = format!(
        "{} tiles of {}x{}x{}",
        units.len(),
        layout.channels,
        layout.height,
        layout.width
    );
    let mut canvas = Canvas::new(path, layout.size(), &what, " (draw fewer neurons)")?;
    let plane = layout.height * layout.width;
    for (u, values) in units.iter().enumerate().take(layout.units) {
        for (channel, cells) in values.chunks_exact(plane.max(1)).enumerate() {
            let (x0, y0) = layout.origin(u, channel);
            for (i, &v) in cells.iter().enumerate() {
                let (r, c) = (i / layout.width, i % layout.width);
                let at = (x0 + c * layout.scale, y0 + r * layout.scale);
                canvas.cell(at, (layout.scale, layout.scale), v);
            }
        }
    }
    canvas.save(path, titles, &[])
}

/// Draws `columns` (one per neuron, each a value in [−1, 1] per input) as a heat map into a PNG at `path`:
/// inputs down, neurons across. A row is `clamp(512 / max(inputs, neurons), 2, 24)` pixels tall and a
/// column `clamp(512 / neurons, that, 24)` wide, the picture at least [`HEATMAP_WIDTH`] wide so a title
/// fits. The inputs are labelled with `names` on the left when the rows are tall enough for text (12
/// pixels).
pub fn weight_heatmap(
    path: &Path,
    titles: &[String],
    names: &[String],
    columns: &[Vec<f32>],
) -> Result<()> {
    let inputs = columns.first().map_or(0, Vec::len);
    let row = (512 / inputs.max(columns.len()).max(1)).clamp(2, 24);
    let column = (512 / columns.len().max(1)).clamp(row, 24);
    let labelled = row >= 12 && names.len() == inputs;
    // The label column is as wide as the longest label needs, measured with the font.
    let mut label_width = 0;
    if labelled {
        register_font()?;
        let style = ("sans-serif", 12).into_font();
        for name in names {
            let (w, _) = style
                .box_size(name)
                .map_err(|e| plot_error(path, format!("{e:?}")))?;
            label_width = label_width.max(w as usize + 6);
        }
        label_width = label_width.min(240);
    }
    let size = (
        ((2 * MARGIN + label_width) as u128 + (columns.len() * column) as u128)
            .max(HEATMAP_WIDTH as u128),
        (TITLE_BAND + 2 * MARGIN) as u128 + (inputs * row) as u128,
    );
    let mut canvas = Canvas::new(
        path,
        size,
        &format!("a heat map of {inputs} inputs by {} neurons", columns.len()),
        "",
    )?;
    let (x0, y0) = (MARGIN + label_width, TITLE_BAND + MARGIN);
    for (j, values) in columns.iter().enumerate() {
        for (i, &v) in values.iter().enumerate() {
            canvas.cell((x0 + j * column, y0 + i * row), (column, row), v);
        }
    }
    let labels: Vec<(String, (i32, i32))> = if labelled {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let y = y0 + i * row + row / 2;
                (name.clone(), ((x0 - 4) as i32, y as i32))
            })
            .collect()
    } else {
        Vec::new()
    };
    canvas.save(path, titles, &labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colour_map_is_white_at_zero_blue_below_and_red_above() {
        assert_eq!(diverging(0.0), [255, 255, 255]);
        assert_eq!(diverging(1.0), [178, 24, 43]);
        assert_eq!(diverging(-1.0), [33, 102, 172]);
        assert_eq!(diverging(7.0), diverging(1.0), "clamped");
        let [r, g, b] = diverging(0.5);
        assert!(r > b && g < 255, "{r} {g} {b}");
        assert_eq!(diverging(f32::NAN), [255, 255, 255]);
    }

    #[test]
    fn scaled_puts_the_largest_magnitude_at_one() {
        assert_eq!(scaled(&[0.5, -2.0, 1.0]), [0.25, -1.0, 0.5]);
        assert_eq!(scaled(&[0.0, 0.0]), [0.0, 0.0]);
    }

    /// 28×28 tiles are drawn twice their size; 10 neurons fill a 4-wide grid of 3 rows.
    #[test]
    fn the_layout_scales_tiles_to_about_56_pixels_in_a_square_grid() {
        let mnist = TileLayout::new(10, 1, 28, 28);
        assert_eq!((mnist.scale, mnist.columns, mnist.rows), (2, 4, 3));
        assert_eq!(
            mnist.size(),
            (2 * 8 + 4 * 56 + 3 * 6, 24 + 2 * 8 + 3 * 56 + 2 * 6)
        );
        assert_eq!(mnist.origin(5, 0), (8 + 56 + 6, 24 + 8 + 56 + 6));
        // Units of 3 channels are 3 tiles wide: one column of them is already wider than tall.
        let rgb_filters = TileLayout::new(4, 3, 5, 5);
        assert_eq!((rgb_filters.scale, rgb_filters.columns), (11, 2));
        assert_eq!(rgb_filters.size().0, 2 * 8 + 2 * (3 * 55 + 2 * 2) + 6);
        assert_eq!(rgb_filters.origin(1, 2), (8 + 169 + 6 + 2 * 57, 24 + 8));
        let deep = TileLayout::new(32, 16, 3, 3);
        assert_eq!((deep.columns, deep.rows), (2, 16));
        let huge = TileLayout::new(1, 1, 100_000, 3);
        assert_eq!((huge.scale, huge.size().1), (1, 24 + 16 + 100_000));
    }
}
