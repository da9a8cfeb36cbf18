//! MNIST: 784 pixels → 128 ReLU → 10 softmax, Adam (lr 0.001, batch 32, 20 epochs), pixels scaled to [0, 1].
//! `cargo run --release --example mnist` trains on the bundled 10k subset (8000 train, 2000 test); with two
//! arguments, the paths of a training and a test images file (such as the full MNIST
//! `train-images-idx3-ubyte.gz` and `t10k-images-idx3-ubyte.gz`; the labels files sit beside them).
//! scikit-learn's MLPClassifier on the subset: 0.950.

use std::path::{Path, PathBuf};
use wgtrain::data;
use wgtrain::fit::{describe, fit, FitConfig};
use wgtrain::{Activation, Device, Loss, Model, Network};

/// Trains and returns the test accuracy.
pub fn run(
    device: Device,
    train_path: &Path,
    test_path: &Path,
    verbose: bool,
) -> wgtrain::Result<f32> {
    let train = data::load_idx(train_path, None)?;
    let test = data::load_idx(test_path, Some(&train.class_names))?;
    let classes = train.class_names.len();
    let network = Network::builder(train.cols())
        .dense(128, Activation::Relu)
        .dense(classes, Activation::Softmax)
        .build(Loss::Ce)?;
    let mut model = Model::new(network, device, 0)?;
    let config = FitConfig {
        progress: verbose,
        ..FitConfig::default()
    };
    fit(&mut model, &train, None, &config, |record, _| {
        if verbose {
            println!("epoch {:>2} {}", record.epoch, describe(record));
        }
        Ok(())
    })?;
    let accuracy = model
        .evaluate(&test.features, &test.encode_targets(Loss::Ce, classes))?
        .accuracy;
    if verbose {
        println!("test accuracy: {accuracy:.4} ({} test images)", test.rows());
    }
    Ok(accuracy)
}

/// The bundled subset's images files.
pub fn bundled() -> (PathBuf, PathBuf) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    (
        data.join("mnist10k-train-images-idx3-ubyte.gz"),
        data.join("mnist10k-test-images-idx3-ubyte.gz"),
    )
}

#[allow(dead_code)]
fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("wgtrain=info"))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (train, test) = match args.as_slice() {
        [] => bundled(),
        [train, test] => (PathBuf::from(train), PathBuf::from(test)),
        _ => {
            eprintln!("error: expected no arguments or TRAIN_IMAGES TEST_IMAGES");
            std::process::exit(2);
        }
    };
    if let Err(e) = Device::from_env().and_then(|device| run(device, &train, &test, true)) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
