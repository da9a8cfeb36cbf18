//! MNIST with a convolutional network, the recipe of `../shared/peers/torch_cnn.py --accuracy`:
//! conv 1→16 3×3 pad 1, ReLU, max-pool 2, conv 16→32 3×3 pad 1, ReLU, max-pool 2, flatten, dense 10,
//! softmax cross-entropy; Adam lr 0.001, batch 64, 10 epochs, pixels scaled to [0, 1].
//! `cargo run --release --example mnist_cnn` trains it on the bundled 10k subset (8000 train, 2000 test),
//! then the same with batch norm after each conv and dropout 0.5 before the dense layer.
//! PyTorch with the first net and recipe reaches 0.9665 on this data; the MLP example 0.955.

use std::path::Path;
use wgtrain::data;
use wgtrain::fit::{describe, fit, FitConfig};
use wgtrain::{Device, Loss, Model, Network, Optimizer, Shape};

/// The network, written as it reads.
pub const ARCH: &str =
    "conv:16:3:pad=1,relu,maxpool:2,conv:32:3:pad=1,relu,maxpool:2,flatten,dense:10,softmax";

/// The same with batch norm after each conv and dropout before the dense layer.
pub const ARCH_REGULARISED: &str = "conv:16:3:pad=1,batchnorm,relu,maxpool:2,conv:32:3:pad=1,batchnorm,relu,maxpool:2,flatten,dropout:0.5,dense:10,softmax";

/// Trains [`ARCH`] for `epochs` and returns the test accuracy.
pub fn run(device: Device, epochs: usize, verbose: bool) -> wgtrain::Result<f32> {
    run_arch(device, ARCH, epochs, verbose)
}

/// Trains `arch` for `epochs` and returns the test accuracy.
pub fn run_arch(device: Device, arch: &str, epochs: usize, verbose: bool) -> wgtrain::Result<f32> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let train = data::load_idx(&data.join("mnist10k-train-images-idx3-ubyte.gz"), None)?;
    let test = data::load_idx(
        &data.join("mnist10k-test-images-idx3-ubyte.gz"),
        Some(&train.class_names),
    )?;
    let image = Shape::Image {
        channels: 1,
        height: 28,
        width: 28,
    };
    let network = Network::builder_for(image).spec(arch)?.build(Loss::Ce)?;
    if verbose {
        println!("{}", network.summary());
    }
    let mut model = Model::new(network, device, 0)?;
    let config = FitConfig {
        epochs,
        batch_size: 64,
        learning_rate: 0.001,
        optimizer: Optimizer::ADAM,
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
        .evaluate(&test.features, &test.encode_targets(Loss::Ce, 10))?
        .accuracy;
    if verbose {
        println!("test accuracy: {accuracy:.4} ({} test images)", test.rows());
    }
    Ok(accuracy)
}

#[allow(dead_code)]
fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("wgtrain=info"))
        .init();
    let both = Device::from_env().and_then(|device| {
        run_arch(device, ARCH, 10, true)?;
        run_arch(device, ARCH_REGULARISED, 10, true)
    });
    if let Err(e) = both {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
