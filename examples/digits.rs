//! 8×8 handwritten digits: 64 pixels → 64 ReLU → 10 softmax, Adam, stratified 80/20 split (seed 0).
//! `cargo run --release --example digits`. scikit-learn's MLPClassifier: 0.974.

use std::path::Path;
use wgtrain::data::{self, CsvOptions, Standardizer};
use wgtrain::fit::{fit, FitConfig};
use wgtrain::{Activation, Device, Loss, Model, Network, Optimizer};

/// Trains and returns the test accuracy.
pub fn run(device: Device, verbose: bool) -> wgtrain::Result<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv");
    let dataset = data::load_csv(&path, &CsvOptions::default())?;
    let (mut train, mut test) = dataset.split(0.2, 0)?;
    let standardizer = Standardizer::fit(&train);
    standardizer.apply(&mut train.features);
    standardizer.apply(&mut test.features);

    let classes = train.class_names.len();
    let network = Network::builder(train.cols())
        .dense(64, Activation::Relu)
        .dense(classes, Activation::Softmax)
        .build(Loss::Ce)?;
    let mut model = Model::new(network, device, 0)?;
    let config = FitConfig {
        epochs: 40,
        batch_size: 32,
        learning_rate: 0.001,
        optimizer: Optimizer::ADAM,
        progress: verbose,
        ..FitConfig::default()
    };
    fit(&mut model, &train, None, &config, |_, _| Ok(()))?;
    let accuracy = model
        .evaluate(&test.features, &test.encode_targets(Loss::Ce, classes))?
        .accuracy;
    if verbose {
        println!(
            "digits: {} training rows, {} test rows",
            train.rows(),
            test.rows()
        );
        println!("test accuracy: {accuracy:.4}");
    }
    Ok(accuracy)
}

#[allow(dead_code)]
fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("wgtrain=info"))
        .init();
    let result = Device::from_env().and_then(|device| run(device, true));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
