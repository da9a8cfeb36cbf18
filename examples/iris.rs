//! Iris: 4 measurements → 16 ReLU → 3 softmax, Adam, on a stratified 80/20 split (seed 0).
//! `cargo run --release --example iris` (device: `WGTRAIN_DEVICE`). scikit-learn's MLPClassifier: 0.978.

use std::path::Path;
use wgtrain::data::{self, CsvOptions, Standardizer};
use wgtrain::fit::{fit, FitConfig};
use wgtrain::{Activation, Device, Loss, Model, Network, Optimizer};

/// Trains and returns the test accuracy.
pub fn run(device: Device, verbose: bool) -> wgtrain::Result<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/iris.csv");
    let dataset = data::load_csv(&path, &CsvOptions::default())?;
    let (mut train, mut test) = dataset.split(0.2, 0)?;
    let standardizer = Standardizer::fit(&train);
    standardizer.apply(&mut train.features);
    standardizer.apply(&mut test.features);

    let network = Network::builder(train.cols())
        .dense(16, Activation::Relu)
        .dense(train.class_names.len(), Activation::Softmax)
        .build(Loss::Ce)?;
    let mut model = Model::new(network, device, 0)?;
    let config = FitConfig {
        epochs: 100,
        batch_size: 16,
        learning_rate: 0.01,
        optimizer: Optimizer::ADAM,
        progress: verbose,
        ..FitConfig::default()
    };
    fit(&mut model, &train, None, &config, |_, _| Ok(()))?;
    let test_y = test.encode_targets(Loss::Ce, train.class_names.len());
    let accuracy = model.evaluate(&test.features, &test_y)?.accuracy;
    if verbose {
        println!(
            "iris: {} training rows, {} test rows",
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
