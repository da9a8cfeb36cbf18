//! PNG charts with plotters: training curves per epoch, sampled functions (the activations example), the
//! confusion heatmap, and a layer's weights as pictures ([`tiles`]).
//! Text uses the DejaVu Sans font embedded from `assets/`, so no system font library is needed.

use crate::error::{Error, Result};
use crate::fit::History;
use image::ImageEncoder;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

pub mod tiles;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const SIZE: (u32, u32) = (900, 450);
const PALETTE: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn register_font() -> Result<()> {
    static REGISTER: Once = Once::new();
    let mut result = Ok(());
    REGISTER.call_once(|| {
        result = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| Error::value("plot font", "the embedded font could not be read"));
    });
    result
}

/// One named curve of `(x, y)` points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f32, f32)>,
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::file(
        path,
        format!("could not draw the plot: {}", crate::error::one_line(e)),
    )
}

/// Draws each group of series in its own panel, side by side, into a PNG at `path`.
/// The chart is drawn in memory and written with [`crate::files::write_atomically`], so a path that is not
/// a regular file is refused and an existing file is never left half written.
pub fn line_chart(path: &Path, panels: &[(&str, &str, Vec<Series>)]) -> Result<()> {
    let png = render_png(path, panels)?;
    crate::files::write_atomically(path, &png)
}

/// The chart as PNG bytes; `path` names it in messages.
fn render_png(path: &Path, panels: &[(&str, &str, Vec<Series>)]) -> Result<Vec<u8>> {
    register_font()?;
    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    draw(path, panels, &mut rgb)?;
    encode_png(path, &rgb, SIZE)
}

/// An RGB buffer of `size` as PNG bytes; `path` names it in messages.
fn encode_png(path: &Path, rgb: &[u8], size: (u32, u32)) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    // The best compression: weight pictures are noisy, and the README keeps some.
    image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(rgb, size.0, size.1, image::ColorType::Rgb8)
    .map_err(|e| plot_error(path, e))?;
    Ok(png)
}

/// Writes an RGB buffer of `size` as a PNG at `path`, atomically.
fn save_png(path: &Path, rgb: &[u8], size: (u32, u32)) -> Result<()> {
    crate::files::write_atomically(path, &encode_png(path, rgb, size)?)
}

fn draw(path: &Path, panels: &[(&str, &str, Vec<Series>)], rgb: &mut [u8]) -> Result<()> {
    let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for ((title, x_label, series), area) in panels.iter().zip(&areas) {
        let points = || series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for &(x, y) in points().filter(|(x, y)| x.is_finite() && y.is_finite()) {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .caption(*title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1.max(x0 + 1e-3), (y0 - pad)..(y1 + pad))
            .map_err(|e| plot_error(path, e))?;
        let whole_x = points().all(|(x, _)| x.fract() == 0.0);
        let x_format = move |x: &f32| {
            if whole_x {
                format!("{x:.0}")
            } else {
                format!("{x}")
            }
        };
        chart
            .configure_mesh()
            .x_desc(*x_label)
            .x_label_formatter(&x_format)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| plot_error(path, e))?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| plot_error(path, e))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))
}

/// Loss per epoch (training and validation), accuracy beside it when the task has one, the validation
/// macro F1 or R² when there is validation data, and the learning rate when a schedule moved it.
pub fn plot_history(path: &Path, history: &History) -> Result<()> {
    let curve = |name: &str, value: &dyn Fn(&crate::fit::EpochRecord) -> Option<f32>| {
        let points: Vec<(f32, f32)> = history
            .epochs
            .iter()
            .filter_map(|r| value(r).map(|v| (r.epoch as f32, v)))
            .collect();
        (!points.is_empty()).then(|| Series {
            name: name.to_string(),
            points,
        })
    };
    let losses: Vec<Series> = [
        curve("training", &|r| Some(r.loss)),
        curve("validation", &|r| r.val_loss),
    ]
    .into_iter()
    .flatten()
    .collect();
    let accuracies: Vec<Series> = [
        curve("training", &|r| r.accuracy),
        curve("validation", &|r| r.val_accuracy),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut panels = vec![("loss", "epoch", losses)];
    if !accuracies.is_empty() {
        panels.push(("accuracy", "epoch", accuracies));
    }
    // The validation score that needs more than counts of hits: macro F1, or R².
    if let Some(f1) = curve("validation", &|r| r.val_f1) {
        panels.push(("macro F1", "epoch", vec![f1]));
    }
    if let Some(r2) = curve("validation", &|r| r.val_r2) {
        panels.push(("R²", "epoch", vec![r2]));
    }
    // The learning rate, when a schedule moved it.
    let rates = &history.epochs;
    if rates
        .windows(2)
        .any(|w| w[0].learning_rate != w[1].learning_rate)
    {
        let rate = curve("learning rate", &|r| Some(r.learning_rate));
        panels.push(("learning rate", "epoch", rate.into_iter().collect()));
    }
    line_chart(path, &panels)
}

/// The confusion matrix as a heatmap PNG at `path`: true classes down, predicted across, each cell shaded
/// by its share of its row (the class's recall on the diagonal) and labelled with its count.
pub fn confusion_heatmap(path: &Path, confusion: &[Vec<usize>], names: &[String]) -> Result<()> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    register_font()?;
    let size = (640u32, 600u32);
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let n = names.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption("confusion matrix", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..n, 0.0..n)
            .map_err(|e| plot_error(path, e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("predicted")
            .y_desc("true")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| plot_error(path, e))?;
        // True class t is row n − 1 − t from the bottom, so the first class is at the top.
        let row_of = |t: usize| n - 1.0 - t as f64;
        for (t, row) in confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let shade = (255.0 * (1.0 - 0.8 * share)) as u8;
                let (x, y) = (p as f64, row_of(t));
                chart
                    .draw_series([Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        RGBColor(shade, shade, 255).filled(),
                    )])
                    .map_err(|e| plot_error(path, e))?;
                let colour = if share > 0.5 { WHITE } else { BLACK };
                let centre = Pos::new(HPos::Center, VPos::Center);
                chart
                    .draw_series([Text::new(
                        count.to_string(),
                        (x + 0.5, y + 0.5),
                        ("sans-serif", 16).into_font().color(&colour).pos(centre),
                    )])
                    .map_err(|e| plot_error(path, e))?;
            }
        }
        // Class names beside the axes, at the pixel positions of the cells' centres.
        for (i, name) in names.iter().enumerate() {
            let (x, _) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            let (_, y) = chart.backend_coord(&(0.0, row_of(i) + 0.5));
            let (_, bottom) = chart.backend_coord(&(0.0, 0.0));
            let (left, _) = chart.backend_coord(&(0.0, 0.0));
            let below = ("sans-serif", 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top));
            let beside = ("sans-serif", 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(name.clone(), (x, bottom + 6), below))
                .map_err(|e| plot_error(path, e))?;
            root.draw(&Text::new(name.clone(), (left - 6, y), beside))
                .map_err(|e| plot_error(path, e))?;
        }
        root.present().map_err(|e| plot_error(path, e))?;
    }
    save_png(path, &rgb, size)
}
