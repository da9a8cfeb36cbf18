//! The networks op parity trains: together they meet every op, each in shapes that are not multiples of
//! any workgroup size, with a last short batch; the edge set adds sums long enough to run in windows.

use super::{Lockstep, Options};
use crate::backend::Backend;
use crate::error::Result;
use crate::layers::Shape;
use crate::loss::{CrossEntropy, Loss};
use crate::network::Network;
use crate::ops::ConvAlgorithm;
use crate::optim::{Clipping, Optimizer};
use crate::{Model, TrainConfig};
use rand::{Rng, SeedableRng};

/// How one network is trained and evaluated.
struct Scenario {
    input: Shape,
    spec: &'static str,
    loss: Loss,
    rows: usize,
    batch: Option<usize>,
    optimizer: Optimizer,
    weight_decay: f32,
    clipping: Clipping,
    /// Batches gathered on the device from a held training set.
    held: bool,
    conv: Option<ConvAlgorithm>,
    cross_entropy: Option<CrossEntropy>,
}

impl Scenario {
    fn new(input: Shape, spec: &'static str, loss: Loss, rows: usize) -> Scenario {
        Scenario {
            input,
            spec,
            loss,
            rows,
            batch: Some(16),
            optimizer: Optimizer::Sgd,
            weight_decay: 0.0,
            clipping: Clipping::default(),
            held: false,
            conv: None,
            cross_entropy: None,
        }
    }
}

fn flat(n: usize) -> Shape {
    Shape::Flat(n)
}

fn image(channels: usize, height: usize, width: usize) -> Shape {
    Shape::Image {
        channels,
        height,
        width,
    }
}

fn uniform(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Targets the loss accepts: class indices, 0/1 labels, or values.
fn targets(loss: Loss, rows: usize, outputs: usize) -> Vec<f32> {
    match loss {
        Loss::Ce => (0..rows).map(|i| ((i * 7) % outputs) as f32).collect(),
        Loss::Bce => (0..rows * outputs)
            .map(|i| ((i * 5) % 3 == 0) as u8 as f32)
            .collect(),
        Loss::Sse | Loss::Mse => uniform(17, rows * outputs, -1.0, 1.0),
    }
}

fn scenarios(options: Options) -> Vec<Scenario> {
    let adam = Optimizer::ADAM;
    let mut all = vec![
        // Held batches, ReLU, softmax with cross-entropy, Adam.
        Scenario {
            held: true,
            optimizer: adam,
            ..Scenario::new(flat(7), "dense:13,relu,dense:5,softmax", Loss::Ce, 37)
        },
        // Tanh, sigmoid with binary cross-entropy, weight decay.
        Scenario {
            weight_decay: 0.01,
            ..Scenario::new(flat(5), "dense:9,tanh,dense:3,sigmoid", Loss::Bce, 29)
        },
        // Leaky ReLU, mean squared error, momentum, both kinds of clipping.
        Scenario {
            optimizer: Optimizer::Momentum { momentum: 0.9 },
            clipping: Clipping {
                norm: Some(0.5),
                value: Some(0.05),
            },
            ..Scenario::new(flat(6), "dense:11,leaky_relu:0.1,dense:2", Loss::Mse, 21)
        },
        // Softmax outside cross-entropy (its own backward), sigmoid hidden, Nesterov.
        Scenario {
            optimizer: Optimizer::Nesterov { momentum: 0.9 },
            ..Scenario::new(flat(4), "dense:6,sigmoid,dense:3,softmax", Loss::Sse, 19)
        },
        // AdamW, a hidden layer with an identity activation.
        Scenario {
            optimizer: Optimizer::ADAMW,
            weight_decay: 0.01,
            ..Scenario::new(flat(3), "dense:5,linear,dense:1", Loss::Mse, 17)
        },
        // Centered RMSprop with momentum.
        Scenario {
            optimizer: Optimizer::Rmsprop {
                alpha: 0.99,
                epsilon: 1e-8,
                momentum: 0.5,
                centered: true,
            },
            ..Scenario::new(flat(3), "dense:4,relu,dense:2", Loss::Mse, 18)
        },
        // Weighted, smoothed cross-entropy; batch norm on rows; dropout.
        Scenario {
            cross_entropy: Some(CrossEntropy {
                class_weights: Some(vec![0.5, 2.0, 1.0]),
                label_smoothing: 0.1,
            }),
            ..Scenario::new(
                flat(6),
                "dense:10,batchnorm,relu,dropout:0.3,dense:3,softmax",
                Loss::Ce,
                23,
            )
        },
        // A CNN through patch matrices: conv (the second one passes a gradient back), batch norm, max pooling,
        // dropout.
        Scenario {
            conv: Some(ConvAlgorithm::PatchMatrix),
            batch: Some(8),
            ..Scenario::new(
                image(2, 9, 7),
                "conv:4:3:pad=1,batchnorm,relu,maxpool:2,dropout:0.25,conv:3:2,relu,flatten,dense:3,softmax",
                Loss::Ce,
                19,
            )
        },
        // The same ops straight on NCHW tensors: strides, average and global pooling.
        Scenario {
            conv: Some(ConvAlgorithm::Direct),
            batch: Some(8),
            optimizer: adam,
            ..Scenario::new(
                image(3, 8, 8),
                "conv:5:3:stride=2:pad=1,tanh,avgpool:2:stride=1,conv:4:2,relu,gap,flatten,dense:2,softmax",
                Loss::Ce,
                13,
            )
        },
        // One row.
        Scenario {
            batch: None,
            ..Scenario::new(flat(3), "dense:2,relu,dense:2,softmax", Loss::Ce, 1)
        },
    ];
    if !options.quick {
        // A 40000-long dot product and a 70000-row batch: sums that run in windows.
        all.push(Scenario {
            batch: None,
            ..Scenario::new(flat(40_000), "dense:3", Loss::Mse, 2)
        });
        all.push(Scenario {
            batch: None,
            ..Scenario::new(flat(3), "dense:2", Loss::Mse, 70_000)
        });
    }
    all
}

/// Two epochs, an evaluation and a prediction of `scenario`; hands the backend back.
fn exercise(backend: Box<dyn Backend>, scenario: &Scenario, seed: u64) -> Result<Box<dyn Backend>> {
    let network = Network::builder_for(scenario.input)
        .spec(scenario.spec)?
        .build(scenario.loss)?;
    let outputs = network.outputs();
    let x = uniform(seed, scenario.rows * network.inputs(), -1.0, 1.0);
    let y = targets(scenario.loss, scenario.rows, outputs);
    let mut model = Model::with_backend(network, backend, seed)?;
    if let Some(conv) = scenario.conv {
        model.set_conv_algorithm(conv)?;
    }
    if let Some(options) = &scenario.cross_entropy {
        model.set_cross_entropy(options)?;
    }
    let config = TrainConfig {
        batch_size: scenario.batch,
        learning_rate: 0.01,
        optimizer: scenario.optimizer,
        weight_decay: scenario.weight_decay,
        clipping: scenario.clipping,
        ..TrainConfig::default()
    };
    let held = scenario.held && model.hold_training_set(&x, &y)?;
    for _ in 0..2 {
        if held {
            model.train_epoch_held(None, &config)?;
        } else {
            model.train_epoch(&x, &y, None, &config)?;
        }
    }
    if scenario.loss == Loss::Ce {
        model.evaluate_with_confusion(&x, &y)?;
    } else {
        model.evaluate(&x, &y)?;
    }
    model.predict(&x)?;
    Ok(model.into_backend())
}

/// Runs every scenario through `lockstep`; returns what it found.
pub fn run_all(
    lockstep: Lockstep,
    options: Options,
) -> Result<std::collections::BTreeMap<(String, String), super::Check>> {
    let found = lockstep.found.clone();
    let mut backend: Box<dyn Backend> = Box::new(lockstep);
    for (i, scenario) in scenarios(options).iter().enumerate() {
        backend = exercise(backend, scenario, 100 + i as u64)?;
    }
    drop(backend);
    let found = found.borrow().clone();
    Ok(found)
}
