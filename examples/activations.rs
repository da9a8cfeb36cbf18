//! Draws sigmoid, tanh, ReLU and leaky ReLU over [-10, 10] with 200 points each into one PNG, using the
//! same `Activation::apply` the CPU backend trains with. `cargo run --release --example activations [OUT.png]`.

use std::path::PathBuf;
use wgtrain::plot::{line_chart, Series};
use wgtrain::Activation;

const POINTS: usize = 200;

fn main() {
    let out = std::env::args().nth(1).map_or_else(
        || PathBuf::from("wgtrain-out/activations.png"),
        PathBuf::from,
    );
    let xs: Vec<f32> = (0..POINTS)
        .map(|i| -10.0 + 20.0 * i as f32 / (POINTS - 1) as f32)
        .collect();
    let series = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu(0.1),
    ]
    .into_iter()
    .map(|activation| Series {
        name: activation.to_string(),
        points: xs.iter().map(|&x| (x, activation.apply(x))).collect(),
    })
    .collect();
    match line_chart(&out, &[("activation functions", "x", series)]) {
        Ok(()) => println!("wrote {}", out.display()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
