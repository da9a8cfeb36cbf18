//! Wisconsin breast cancer (30 features, malignant/benign) two ways on a stratified 80/20 split (seed 0):
//! logistic regression (one sigmoid unit, binary cross-entropy) and an MLP (30 → 32 ReLU → 1 sigmoid).
//! `cargo run --release --example breast_cancer`. scikit-learn's MLPClassifier: 0.956.

use std::path::Path;
use wgtrain::data::{self, CsvOptions, Dataset, Standardizer};
use wgtrain::fit::{fit, FitConfig};
use wgtrain::{Activation, Device, Loss, Model, Network, Optimizer};

/// Standardised train and test splits.
fn splits() -> wgtrain::Result<(Dataset, Dataset)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/breast_cancer.csv");
    let dataset = data::load_csv(&path, &CsvOptions::default())?;
    let (mut train, mut test) = dataset.split(0.2, 0)?;
    let standardizer = Standardizer::fit(&train);
    standardizer.apply(&mut train.features);
    standardizer.apply(&mut test.features);
    Ok((train, test))
}

/// Trains logistic regression (`hidden` empty) or an MLP and returns the test accuracy.
pub fn run(device: Device, hidden: &[usize], verbose: bool) -> wgtrain::Result<f32> {
    let (train, test) = splits()?;
    let mut builder = Network::builder(train.cols());
    for &width in hidden {
        builder = builder.dense(width, Activation::Relu);
    }
    let network = builder.dense(1, Activation::Sigmoid).build(Loss::Bce)?;
    let mut model = Model::new(network, device, 0)?;
    let config = FitConfig {
        epochs: 60,
        batch_size: 32,
        learning_rate: 0.005,
        optimizer: Optimizer::ADAM,
        progress: verbose,
        ..FitConfig::default()
    };
    fit(&mut model, &train, None, &config, |_, _| Ok(()))?;
    let accuracy = model
        .evaluate(&test.features, &test.encode_targets(Loss::Bce, 1))?
        .accuracy;
    if verbose {
        let name = if hidden.is_empty() {
            "logistic regression"
        } else {
            "MLP"
        };
        println!(
            "{name} ({} parameters): test accuracy {accuracy:.4}",
            model.network().parameter_count()
        );
    }
    Ok(accuracy)
}

#[allow(dead_code)]
fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("wgtrain=info"))
        .init();
    let result = Device::from_env().and_then(|device| {
        run(device, &[], true)?;
        run(device, &[32], true)
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
