//! The default job: `cargo run --release` with no arguments.

use crate::{DeviceArg, LossChoice, OutputChoice, TrainArgs};
use std::path::{Path, PathBuf};
use wgtrain::data::{self, TaskChoice};
use wgtrain::Optimizer;

/// Where the default job writes.
const DEFAULT_OUT_DIR: &str = "wgtrain-out";

/// A file shipped in the repository: as given when it exists, else under the crate's directory (so the
/// default job also works when run from elsewhere in a checkout).
pub fn bundled(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    let in_crate = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if !here.exists() && in_crate.exists() {
        in_crate
    } else {
        here
    }
}

/// `cargo run --release` with no arguments: the MNIST 10k subset, 784-128-10, defaults otherwise.
pub fn default_job() -> TrainArgs {
    TrainArgs {
        data: bundled("data/mnist10k-train-images-idx3-ubyte.gz"),
        target: None,
        max_record_bytes: None,
        task: TaskChoice::Auto,
        test_data: Some(bundled("data/mnist10k-test-images-idx3-ubyte.gz")),
        layers: "128".into(),
        activation: None,
        arch: None,
        input_shape: None,
        output: OutputChoice::Auto,
        loss: LossChoice::Auto,
        optimizer: Optimizer::ADAM,
        lr: None,
        momentum: None,
        weight_decay: None,
        betas: None,
        eps: None,
        alpha: None,
        centered: false,
        clip_norm: None,
        clip_value: None,
        class_weight: None,
        label_smoothing: None,
        schedule: crate::ScheduleChoice::Constant,
        warmup: None,
        step_size: None,
        milestones: None,
        gamma: None,
        min_lr: None,
        plateau_patience: None,
        epochs: 20,
        batch_size: 32,
        no_shuffle: false,
        seed: 0,
        val_split: 0.0,
        patience: None,
        standardize: false,
        no_standardize: false,
        no_scale_target: false,
        missing: wgtrain::data::Missing::Error,
        categorical: None,
        max_categories: data::DEFAULT_MAX_CATEGORIES,
        delimiter: None,
        features: None,
        ignore: None,
        device: DeviceArg { device: None },
        init: None,
        save_state: false,
        resume: None,
        command_line: Vec::new(),
        out: Some(Path::new(DEFAULT_OUT_DIR).join("model.safetensors")),
        plot: Some(Path::new(DEFAULT_OUT_DIR).join("loss.png")),
        quiet: false,
        json: false,
        distributed: false,
    }
}
