//! Entry points shared by the `cargo fuzz` targets in `fuzz/` and the deterministic fuzz test in
//! `tests/fuzz_smoke.rs`: each feeds arbitrary bytes to a loader, which must return, never panic.
//! Results are discarded; an `Err` is the expected outcome for most inputs.

use crate::activation::Activation;
use crate::data::{self, CsvOptions, TaskChoice};
use crate::loss::Loss;
use crate::network::Network;
use std::path::Path;

/// The CSV loader with default options, with a named target, and against known classes.
pub fn csv(bytes: &[u8]) {
    let _ = data::parse_csv("fuzz.csv", bytes, &CsvOptions::default());
    let named = CsvOptions {
        target: Some("y".into()),
        task: TaskChoice::Regress,
        ..CsvOptions::default()
    };
    let _ = data::parse_csv("fuzz.csv", bytes, &named);
    let known = CsvOptions {
        target: None,
        task: TaskChoice::Classify,
        classes: Some(vec!["0".into(), "a".into()]),
        features: Some(vec!["a".into(), "b".into()]),
        max_record_bytes: 64,
        ..CsvOptions::default()
    };
    let _ = data::parse_csv("fuzz.csv", bytes, &known);
}

/// The IDX loader: the first byte says where the images file ends and the labels file starts.
pub fn idx(bytes: &[u8]) {
    let Some((&split, rest)) = bytes.split_first() else {
        return;
    };
    let at = (split as usize * rest.len()) / 255;
    let (images, labels) = rest.split_at(at.min(rest.len()));
    let _ = data::parse_idx(
        (Path::new("fuzz-images-idx3-ubyte"), images.to_vec()),
        (Path::new("fuzz-labels-idx1-ubyte"), labels.to_vec()),
        None,
    );
}

/// The checkpoint reader, and the `--init` reader for a small fixed network.
pub fn safetensors(bytes: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let _ = crate::checkpoint::parse(path, bytes);
    if let Ok(network) = Network::builder(3)
        .dense(4, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
    {
        let _ = crate::checkpoint::parse_parameters(path, bytes, &network);
    }
}
