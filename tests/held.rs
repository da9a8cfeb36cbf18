//! Training from a training set held on the device: the same steps as uploading each batch, bit for bit,
//! with several steps per submission and nothing created after the first step.

mod common;

use common::{gpu_backend, uniform};
use wgtrain::{
    Activation, Backend, CpuBackend, Error, Loss, Model, Network, Optimizer, TrainConfig,
    STEPS_PER_SUBMIT,
};

/// 83 rows in batches of 2: 42 steps, the last one partial.
const ROWS: usize = 83;

fn model(backend: Box<dyn Backend>) -> Model {
    let net = Network::builder(7)
        .dense(9, Activation::Tanh)
        .dense(4, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    Model::with_backend(net, backend, 3).expect("model")
}

fn data() -> (Vec<f32>, Vec<f32>, Vec<usize>) {
    let x = uniform(11, ROWS * 7, -2.0, 2.0);
    let y = (0..ROWS).map(|i| (i * 7 % 4) as f32).collect();
    // A fixed shuffle: every row once, out of order.
    let order = (0..ROWS).map(|i| (i * 31 + 5) % ROWS).collect();
    (x, y, order)
}

fn config() -> TrainConfig {
    TrainConfig {
        batch_size: Some(2),
        learning_rate: 0.05,
        optimizer: Optimizer::ADAM,
        ..TrainConfig::default()
    }
}

/// Two epochs each way from the same start: the epoch sums and the parameters are identical bits, and a
/// held epoch of 42 steps is ⌈42 / STEPS_PER_SUBMIT⌉ submissions, one readback and no allocation.
fn held_epochs_match_uploaded_ones(make: &dyn Fn() -> Box<dyn Backend>) {
    let (x, y, order) = data();
    let mut uploaded = model(make());
    let mut held = model(make());
    assert!(held.hold_training_set(&x, &y).expect("hold"));
    assert_eq!(held.held_rows(), Some(ROWS));
    for epoch in 0..2 {
        let order = (epoch == 1).then_some(order.as_slice());
        let want = uploaded
            .train_epoch(&x, &y, order, &config())
            .expect("epoch");
        let before = held.counters();
        let got = held.train_epoch_held(order, &config()).expect("held epoch");
        let after = held.counters();
        assert_eq!(got, want, "epoch {epoch} loss and accuracy");
        if epoch == 1 {
            let steps = ROWS.div_ceil(2) as u64;
            assert_eq!(
                after.submits - before.submits,
                steps.div_ceil(STEPS_PER_SUBMIT as u64)
            );
            assert_eq!(after.readbacks - before.readbacks, 1);
            assert_eq!(after.allocations, before.allocations, "allocations");
        }
    }
    assert_eq!(
        held.parameters().expect("read"),
        uploaded.parameters().expect("read"),
        "parameters after two epochs"
    );
    let live = held.counters().live_bytes;
    held.release_training_set().expect("release");
    assert_eq!(held.held_rows(), None);
    assert!(held.counters().live_bytes < live, "the held data is freed");
    assert!(matches!(
        held.train_epoch_held(None, &config()),
        Err(Error::InvalidValue { .. })
    ));
}

#[test]
fn cpu_held_epochs_match_uploaded_ones() {
    held_epochs_match_uploaded_ones(&|| Box::new(CpuBackend::new()));
}

#[test]
fn gpu_held_epochs_match_uploaded_ones() {
    if gpu_backend().is_none() {
        return;
    }
    held_epochs_match_uploaded_ones(&|| Box::new(gpu_backend().expect("adapter")));
}

#[test]
fn bad_row_orders_and_data_are_typed_errors() {
    let (x, y, _) = data();
    let mut model = model(Box::new(CpuBackend::new()));
    assert!(model.hold_training_set(&x, &y[1..]).is_err());
    assert!(model.hold_training_set(&x, &y).expect("hold"));
    let short: Vec<usize> = (0..ROWS - 1).collect();
    let past_end: Vec<usize> = (1..=ROWS).collect();
    for order in [short, past_end] {
        match model.train_epoch_held(Some(&order), &config()) {
            Err(Error::Shape { what, .. }) => assert_eq!(what, "row order"),
            other => panic!("expected a row order error, got {other:?}"),
        }
    }
}
