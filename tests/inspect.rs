//! `wgtrain inspect` on checkpoints written with known weights: the inputs it lists per neuron (names,
//! signed weights, order) and the pictures `--plot` draws (their size from the tile layout, red where a
//! weight is positive, blue where negative). The weights are checked against the file's PyTorch layout
//! too, so a transposed read would fail here rather than print the wrong inputs.

mod common;

use common::cli::*;
use std::path::{Path, PathBuf};
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::data::Task;
use wgtrain::layers::{Conv2d, Flatten};
use wgtrain::network::LayerParams;
use wgtrain::{Activation, Layer, Loss, Network, Shape};

/// Saves `network` with `params` as a classifier of `classes`, its inputs named `names`.
fn save(
    dir: &Path,
    network: &Network,
    params: Vec<LayerParams>,
    names: &[&str],
    classes: &[&str],
) -> PathBuf {
    let mut meta = ModelMeta::describe(network);
    meta.task = Task::Classify;
    meta.target = "label".into();
    meta.class_names = classes.iter().map(|c| c.to_string()).collect();
    meta.feature_names = names.iter().map(|n| n.to_string()).collect();
    let path = dir.join("model.safetensors");
    checkpoint::save(&path, &params, &meta).expect("save");
    path
}

fn layer(weights: Vec<f32>, bias: Vec<f32>) -> LayerParams {
    LayerParams {
        weights,
        bias,
        state: Vec::new(),
    }
}

/// The tensor `name` of a checkpoint as PyTorch reads it: shape and values.
fn torch_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("read");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let tensor = file.tensor(name).expect("tensor");
    let values = tensor
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (tensor.shape().to_vec(), values)
}

/// The whitespace-separated words of the lines that list `unit`s (`neuron`, `filter`).
fn units(out: &str, unit: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| l.trim_start().starts_with(&format!("{unit} ")))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

fn png(path: &Path) -> image::RgbImage {
    image::open(path).expect("a PNG").to_rgb8()
}

#[track_caller]
fn reddish(image: &image::RgbImage, x: u32, y: u32) {
    let [r, g, b] = image.get_pixel(x, y).0;
    assert!(r > b + 100 && r > g + 100, "({x},{y}) = {r},{g},{b}");
}

#[track_caller]
fn bluish(image: &image::RgbImage, x: u32, y: u32) {
    let [r, g, b] = image.get_pixel(x, y).0;
    assert!(b > r + 100, "({x},{y}) = {r},{g},{b}");
}

/// 4 named features → 3 relu neurons → 2 classes. Stored weights are `[inputs, neurons]`: row `i` holds
/// input `i`'s weight in each neuron.
fn tabular(dir: &Path) -> PathBuf {
    let network = Network::builder(4)
        .dense(3, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("network");
    #[rustfmt::skip]
    let hidden = vec![
        // neuron:  0      1     2
        0.5,   -0.25,  0.0,     // age
        -2.0,   0.25,  0.0,     // height
        0.1,    3.0,   0.0,     // weight
        1.0,    0.0,  -1e-4,    // income
    ];
    #[rustfmt::skip]
    let output = vec![
        1.0, -1.0,  // h1.0
        0.0,  2.0,  // h1.1
        -0.5, 0.0,  // h1.2
    ];
    save(
        dir,
        &network,
        vec![
            layer(hidden, vec![0.1, -0.2, 0.0]),
            layer(output, vec![0.0, 0.0]),
        ],
        &["age", "height", "weight", "income"],
        &["no", "yes"],
    )
}

#[test]
fn each_hidden_neuron_lists_its_largest_weights_by_name_and_sign() {
    let dir = scratch("inspect-tabular");
    let model = tabular(&dir);
    // PyTorch's `layers.0.weight` is [neurons, inputs]: neuron 1 is its row 1.
    let (shape, torch) = torch_tensor(&model, "layers.0.weight");
    assert_eq!(shape, [3, 4]);
    assert_eq!(torch[4..8], [-0.25, 0.25, 3.0, 0.0]);

    let model = model.to_str().expect("utf-8");
    let out = ok(&["inspect", "--model", model, "--top", "3"]);
    assert!(
        out.contains("layer 0 dense:3 → relu, hidden layer 1: 3 neurons over the 4 input features"),
        "{out}"
    );
    assert_eq!(
        units(&out, "neuron"),
        [
            words("neuron 0 bias +0.100 height -2.000 income +1.000 age +0.500"),
            // Equal magnitudes in input order: age before height.
            words("neuron 1 bias -0.200 weight +3.000 age -0.250 height +0.250"),
            words("neuron 2 bias +0.000 income -1.00e-4 age +0.000 height +0.000"),
        ],
        "{out}"
    );
    assert!(!out.contains("class"), "only hidden layers: {out}");

    // The output layer on request: its inputs are the hidden neurons, its neurons the classes.
    let out = ok(&["inspect", "--model", model, "--layer", "2", "--top", "2"]);
    assert!(out.contains("the output layer"), "{out}");
    assert_eq!(
        units(&out, "neuron"),
        [
            words("neuron 0 (class no) bias +0.000 h1.0 +1.000 h1.2 -0.500"),
            words("neuron 1 (class yes) bias +0.000 h1.1 +2.000 h1.0 -1.000"),
        ],
        "{out}"
    );

    // --neurons cuts the list and says how to see the rest.
    let out = ok(&["inspect", "--model", model, "--neurons", "2", "--top", "1"]);
    assert_eq!(units(&out, "neuron").len(), 2, "{out}");
    assert!(
        out.contains("… 1 more neuron (--neurons all lists every one)"),
        "{out}"
    );

    // A flat input's weights are drawn as a heat map: 4 inputs down, 24-pixel cells.
    let plot = dir.join("heat.png");
    ok(&[
        "inspect",
        "--model",
        model,
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(png(&plot).height(), 24 + 2 * 8 + 4 * 24);
}

#[test]
fn a_model_without_a_hidden_layer_lists_its_output_neurons() {
    let dir = scratch("inspect-logistic");
    let network = Network::builder(2)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("network");
    let model = save(
        &dir,
        &network,
        vec![layer(vec![1.5, 0.0, -0.5, 2.0], vec![0.0, 1.0])],
        &["x", "y"],
        &["a", "b"],
    );
    let out = ok(&["inspect", "--model", model.to_str().unwrap()]);
    assert!(out.contains("no hidden layer"), "{out}");
    assert_eq!(
        units(&out, "neuron"),
        [
            words("neuron 0 (class a) bias +0.000 x +1.500 y -0.500"),
            words("neuron 1 (class b) bias +1.000 y +2.000 x +0.000"),
        ]
    );
}

/// 1×5×4 images → flatten → 3 neurons → 2 classes. Neuron 0 weighs pixel (1,2) +1 and pixel (3,0) −1,
/// neuron 1 nothing.
#[test]
fn an_image_model_draws_one_tile_per_neuron() {
    let dir = scratch("inspect-image");
    let input = Shape::Image {
        channels: 1,
        height: 5,
        width: 4,
    };
    let network = Network::builder_for(input)
        .layer(Layer::Flatten(Flatten))
        .dense(3, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("network");
    let (pixels, neurons) = (20, 3);
    let mut hidden = vec![0.0; pixels * neurons];
    for (p, w) in hidden.iter_mut().enumerate() {
        if p % neurons == 2 {
            *w = 0.01 * (p / neurons) as f32;
        }
    }
    hidden[(4 + 2) * neurons] = 1.0; // pixel (1,2) in neuron 0
    hidden[(3 * 4) * neurons] = -1.0; // pixel (3,0) in neuron 0
    let names: Vec<String> = (0..pixels).map(|i| format!("pixel{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let model = save(
        &dir,
        &network,
        vec![
            layer(hidden, vec![0.0; 3]),
            layer(vec![0.0; 6], vec![0.0; 2]),
        ],
        &names,
        &["a", "b"],
    );
    let plot = dir.join("tiles.png");
    let args = [
        "inspect",
        "--model",
        model.to_str().unwrap(),
        "--top",
        "2",
        "--plot",
        plot.to_str().unwrap(),
    ];
    let out = ok(&args);
    assert!(
        out.contains("3 neurons over the 1x5x4 input image, pixels px(row,col)"),
        "{out}"
    );
    assert_eq!(
        units(&out, "neuron")[0],
        words("neuron 0 bias +0.000 px(1,2) +1.000 px(3,0) -1.000")
    );
    assert!(out.contains("plot written to"), "{out}");
    // Tiles of 5×4 weights, 11 pixels each (56 / 5): 44 × 55. Two columns make the grid wider than tall
    // (2² · 44 ≥ 3 · 55), so two rows; 8 pixels around, 6 between, a 24-pixel title band on top.
    let image = png(&plot);
    assert_eq!(
        image.dimensions(),
        (8 + 44 + 6 + 44 + 8, 24 + 8 + 55 + 6 + 55 + 8)
    );
    // The centre of a weight's cell: tile origin + (col, row) · 11 + 5.
    let (x0, y0) = (8, 24 + 8);
    reddish(&image, x0 + 2 * 11 + 5, y0 + 11 + 5);
    bluish(&image, x0 + 5, y0 + 3 * 11 + 5);
    // Neuron 1 (all zero) is white; neuron 2's largest weight (last pixel) is the reddest.
    assert_eq!(
        image.get_pixel(x0 + 44 + 6 + 20, y0 + 20).0,
        [255, 255, 255]
    );
    reddish(&image, x0 + 3 * 11 + 5, y0 + 55 + 6 + 4 * 11 + 5);

    // --neurons limits the picture too: one tile.
    let mut first = args.to_vec();
    first.extend(["--neurons", "1"]);
    let out = ok(&first);
    assert!(out.contains("(the first 1 of 3 neurons)"), "{out}");
    assert_eq!(png(&plot).dimensions(), (8 + 44 + 8, 24 + 8 + 55 + 8));
}

/// 2×6×6 images → 3 conv filters of 3×3 → flatten → 2 classes: a tile per filter and input channel.
#[test]
fn a_conv_model_draws_one_tile_per_filter_and_channel() {
    let dir = scratch("inspect-conv");
    let input = Shape::Image {
        channels: 2,
        height: 6,
        width: 6,
    };
    let conv = Conv2d {
        out_channels: 3,
        kernel: 3,
        stride: 1,
        padding: 0,
    };
    let network = Network::builder_for(input)
        .layer(Layer::Conv2d(conv))
        .layer(Layer::Activation(Activation::Relu))
        .layer(Layer::Flatten(Flatten))
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("network");
    // Stored [in channels · 3 · 3, filters]: tap p = channel · 9 + row · 3 + col.
    let mut weights = vec![0.0; 18 * 3];
    weights[(9 + 2 * 3 + 1) * 3] = 2.0; // filter 0, channel 1, tap (2,1)
    weights[4 * 3] = -2.0; // filter 0, channel 0, tap (1,1)
    weights[3 + 1] = 0.5; // filter 1, channel 0, tap (0,1)
    let model = save(
        &dir,
        &network,
        vec![
            layer(weights, vec![0.25, 0.0, 0.0]),
            layer(vec![0.0; 3 * 16 * 2], vec![0.0; 2]),
        ],
        &[],
        &["a", "b"],
    );
    // PyTorch's [filters, channels, 3, 3]: filter 0, channel 1, tap (2,1) is 2.
    let (shape, torch) = torch_tensor(&model, "layers.0.weight");
    assert_eq!(shape, [3, 2, 3, 3]);
    assert_eq!(torch[9 + 2 * 3 + 1], 2.0);

    let plot = dir.join("filters.png");
    let out = ok(&[
        "inspect",
        "--model",
        model.to_str().unwrap(),
        "--top",
        "2",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(
        out.contains(
            "3 filters of 2x3x3 over the 2x6x6 input image, taps c{k}(row,col) on channel k"
        ),
        "{out}"
    );
    assert_eq!(
        units(&out, "filter")[..2],
        [
            // Equal magnitudes in input order: channel 0 before channel 1.
            words("filter 0 bias +0.250 |w| 2.828 c0(1,1) -2.000 c1(2,1) +2.000"),
            words("filter 1 bias +0.000 |w| 0.500 c0(0,1) +0.500 c0(0,0) +0.000"),
        ]
    );
    // 3×3 tiles at 18 pixels (56 / 3): a filter is 2 · 54 + 2 = 110 wide, 54 tall; 2 columns, 2 rows.
    let image = png(&plot);
    assert_eq!(
        image.dimensions(),
        (8 + 110 + 6 + 110 + 8, 24 + 8 + 54 + 6 + 54 + 8)
    );
    let (x0, y0) = (8, 24 + 8);
    reddish(&image, x0 + 56 + 18 + 9, y0 + 2 * 18 + 9);
    bluish(&image, x0 + 18 + 9, y0 + 18 + 9);
}

/// A flat model of IDX pixel names (`pixel0`…) reads as square images; `--input-shape` says otherwise.
#[test]
fn idx_pixel_names_read_as_a_square_image() {
    let dir = scratch("inspect-idx");
    let network = Network::builder(16)
        .dense(2, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("network");
    let mut hidden = vec![0.0; 32];
    hidden[(2 * 4 + 3) * 2] = 1.0; // pixel (2,3) of a 4×4 image, neuron 0
    let names: Vec<String> = (0..16).map(|i| format!("pixel{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let model = save(
        &dir,
        &network,
        vec![
            layer(hidden, vec![0.0; 2]),
            layer(vec![0.0; 4], vec![0.0; 2]),
        ],
        &names,
        &["a", "b"],
    );
    let model = model.to_str().unwrap();
    let out = ok(&["inspect", "--model", model, "--top", "1"]);
    assert!(out.contains("16 inputs read as 1x4x4 images"), "{out}");
    assert_eq!(
        units(&out, "neuron")[0],
        words("neuron 0 bias +0.000 px(2,3) +1.000")
    );
    let out = ok(&[
        "inspect",
        "--model",
        model,
        "--top",
        "1",
        "--input-shape",
        "1,2,8",
    ]);
    assert_eq!(
        units(&out, "neuron")[0],
        words("neuron 0 bias +0.000 px(1,3) +1.000")
    );
    fails(
        &["inspect", "--model", model, "--input-shape", "1,3,3"],
        &["--input-shape", "1x3x3 holds 9 values", "16 inputs"],
    );
}

#[test]
fn bad_requests_are_one_error_line() {
    let dir = scratch("inspect-errors");
    let missing = dir.join("missing.safetensors");
    fails(
        &["inspect", "--model", missing.to_str().unwrap()],
        &["missing.safetensors"],
    );
    let model = tabular(&dir);
    let model = model.to_str().unwrap();
    fails(
        &["inspect", "--model", model, "--layer", "1"],
        &["--layer", "layer 1 is relu", "0, 2"],
    );
    fails(
        &["inspect", "--model", model, "--layer", "7"],
        &["--layer", "layers 0 to 3"],
    );
    fails(&["inspect", "--model", model, "--top", "0"], &["--top"]);
    fails(
        &["inspect", "--model", model, "--neurons", "some"],
        &["--neurons", "all"],
    );
    // The picture never replaces the model, and must be a PNG.
    let before = snapshot(&[model]);
    fails(
        &["inspect", "--model", model, "--plot", model],
        &["--plot", ".png"],
    );
    let link = dir.join("model.png");
    std::os::unix::fs::symlink(model, &link).expect("symlink");
    fails(
        &[
            "inspect",
            "--model",
            model,
            "--plot",
            link.to_str().unwrap(),
        ],
        &["--plot", "refusing to overwrite an input"],
    );
    assert_eq!(snapshot(&[model]), before);
}
