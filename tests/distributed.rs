//! Data-parallel training without MPI: ranks as threads of this process, joined by a collective over shared
//! memory, so the engine's part (slices of the global batch, the gradients' normalisers, the update on
//! the summed gradient, the reduced metrics) is checked in every build. N ranks with batch B must train
//! the weights of one process with batch N·B; `tests/mpi.rs` checks the same through `mpirun`.

mod common;

use std::sync::{Arc, Barrier, Mutex};
use wgtrain::distributed::{rank_slice, Collective};
use wgtrain::loss::CrossEntropy;
use wgtrain::{Device, LayerParams, Loss, Model, Network, Optimizer, TrainConfig};

/// Relative agreement asked of N ranks against one process (the bound).
const REL: f32 = 1e-5;

/// What the ranks share: one slot each, and a barrier around every exchange.
#[derive(Debug)]
struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f32>>>,
}

#[derive(Debug)]
struct Threads {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

impl Threads {
    fn exchange(&self, values: &mut [f32], combine: impl Fn(&[Vec<f32>]) -> Vec<f32>) {
        self.shared.slots.lock().unwrap()[self.rank] = values.to_vec();
        self.shared.barrier.wait();
        let result = combine(&self.shared.slots.lock().unwrap());
        self.shared.barrier.wait();
        values.copy_from_slice(&result);
    }
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    /// Summed in rank order, so every rank gets the same bits.
    fn allreduce_sum(&self, values: &mut [f32]) -> wgtrain::Result<()> {
        self.exchange(values, |slots| {
            let mut sum = vec![0.0; slots[0].len()];
            for slot in slots {
                sum.iter_mut().zip(slot).for_each(|(s, v)| *s += v);
            }
            sum
        });
        Ok(())
    }
    fn broadcast(&self, values: &mut [f32]) -> wgtrain::Result<()> {
        self.exchange(values, |slots| slots[0].clone());
        Ok(())
    }
}

fn flat(layers: &[LayerParams]) -> Vec<f32> {
    layers
        .iter()
        .flat_map(|l| l.weights.iter().chain(&l.bias).copied())
        .collect()
}

struct Run {
    network: Network,
    x: Vec<f32>,
    y: Vec<f32>,
    config: TrainConfig,
    epochs: usize,
    cross_entropy: CrossEntropy,
}

/// Each epoch's shuffled order, the same on every rank (a seeded permutation).
fn order(rows: usize, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut state = 0x9e37_79b9_u64 ^ epoch as u64;
    for i in (1..rows).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    order
}

/// The parameters after `run` on `ranks` ranks (threads) with per-rank batch `batch`, and each epoch's
/// training loss on rank 0.
fn train(run: &Run, device: Device, ranks: usize, batch: usize) -> (Vec<f32>, Vec<f32>) {
    let shared = Arc::new(Shared {
        barrier: Barrier::new(ranks),
        slots: Mutex::new(vec![Vec::new(); ranks]),
    });
    let results: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..ranks)
            .map(|rank| {
                let comm = Threads {
                    rank,
                    size: ranks,
                    shared: shared.clone(),
                };
                scope.spawn(move || {
                    // Rank 1 starts elsewhere: the broadcast must make it rank 0's.
                    let mut model = Model::new(run.network.clone(), device, rank as u64).unwrap();
                    model.set_cross_entropy(&run.cross_entropy).unwrap();
                    model.broadcast_parameters(&comm).unwrap();
                    let config = TrainConfig {
                        batch_size: Some(batch),
                        ..run.config
                    };
                    let mut losses = Vec::new();
                    for epoch in 0..run.epochs {
                        let order = order(run.x.len() / run.network.inputs(), epoch);
                        let stats = model
                            .train_epoch_distributed(&run.x, &run.y, Some(&order), &config, &comm)
                            .unwrap();
                        losses.push(stats.loss);
                    }
                    (flat(&model.parameters().unwrap()), losses)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for other in &results[1..] {
        assert_eq!(
            other.0, results[0].0,
            "every rank holds the same parameters"
        );
    }
    results[0].clone()
}

fn assert_close(what: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len());
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= REL * e.abs().max(1e-2),
            "{what}: parameter {i}: {a} on the ranks, {e} in one process"
        );
    }
}

fn uniform(seed: u64, len: usize) -> Vec<f32> {
    common::uniform(seed, len, -1.0, 1.0)
}

fn runs() -> Vec<(&'static str, Run)> {
    let rows = 45; // batches of 2×8 = 16: 16, 16 and a short 13 split 8 and 5
    let classify = Network::builder(5)
        .spec("dense:7,tanh,dense:3,softmax")
        .unwrap()
        .build(Loss::Ce)
        .unwrap();
    let regress = Network::builder(5)
        .spec("dense:6,relu,dense:2")
        .unwrap()
        .build(Loss::Mse)
        .unwrap();
    let sum = Network::builder(5)
        .spec("dense:4,sigmoid,dense:1")
        .unwrap()
        .build(Loss::Sse)
        .unwrap();
    let classes: Vec<f32> = (0..rows).map(|i| ((i * 7) % 3) as f32).collect();
    let adam = TrainConfig {
        learning_rate: 0.01,
        optimizer: Optimizer::ADAM,
        ..TrainConfig::default()
    };
    vec![
        (
            "cross-entropy, Adam",
            Run {
                network: classify.clone(),
                x: uniform(1, rows * 5),
                y: classes.clone(),
                config: adam,
                epochs: 4,
                cross_entropy: CrossEntropy::default(),
            },
        ),
        (
            "weighted cross-entropy, momentum, clipping",
            Run {
                network: classify,
                x: uniform(2, rows * 5),
                y: classes,
                config: TrainConfig {
                    learning_rate: 0.05,
                    optimizer: Optimizer::Momentum { momentum: 0.9 },
                    clipping: wgtrain::Clipping {
                        norm: Some(0.5),
                        value: None,
                    },
                    ..TrainConfig::default()
                },
                epochs: 3,
                cross_entropy: CrossEntropy {
                    class_weights: Some(vec![0.5, 2.0, 1.0]),
                    label_smoothing: 0.1,
                },
            },
        ),
        (
            "mse, AdamW",
            Run {
                network: regress,
                x: uniform(3, rows * 5),
                y: uniform(4, rows * 2),
                config: TrainConfig {
                    optimizer: Optimizer::ADAMW,
                    weight_decay: 0.01,
                    ..adam
                },
                epochs: 3,
                cross_entropy: CrossEntropy::default(),
            },
        ),
        (
            "sse (a sum), SGD",
            Run {
                network: sum,
                x: uniform(5, rows * 5),
                y: uniform(6, rows),
                config: TrainConfig {
                    learning_rate: 0.01,
                    ..TrainConfig::default()
                },
                epochs: 3,
                cross_entropy: CrossEntropy::default(),
            },
        ),
    ]
}

#[test]
fn ranks_train_the_weights_of_one_process_on_the_global_batch() {
    for device in common::devices() {
        for (what, run) in runs() {
            let (one, one_losses) = train(&run, device, 1, 16);
            let (two, two_losses) = train(&run, device, 2, 8);
            assert_close(&format!("{what} on {device:?}, 2 ranks of 8"), &two, &one);
            let (three, _) = train(&run, device, 3, 5);
            let (one_15, _) = train(&run, device, 1, 15);
            assert_close(
                &format!("{what} on {device:?}, 3 ranks of 5"),
                &three,
                &one_15,
            );
            for (a, b) in two_losses.iter().zip(&one_losses) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{what}: epoch loss {a} vs {b}"
                );
            }
            // The check can fail: a different batch trains other weights.
            let (other, _) = train(&run, device, 1, 8);
            assert!(
                other
                    .iter()
                    .zip(&one)
                    .any(|(a, b)| (a - b).abs() > REL * b.abs().max(1e-2)),
                "{what}: batch 8 and batch 16 gave the same weights"
            );
        }
    }
}

#[test]
fn short_batches_leave_the_last_ranks_fewer_rows_or_none() {
    assert_eq!(rank_slice(32..45, 8, 0), 32..40);
    assert_eq!(rank_slice(32..45, 8, 1), 40..45);
    assert_eq!(rank_slice(32..45, 8, 2), 45..45);
    assert_eq!(rank_slice(0..16, 8, 1), 8..16);
}

#[test]
fn validation_is_shared_and_summed() {
    let network = Network::builder(4)
        .spec("dense:5,relu,dense:3,softmax")
        .unwrap()
        .build(Loss::Ce)
        .unwrap();
    let rows = 23;
    let x = uniform(9, rows * 4);
    let y: Vec<f32> = (0..rows).map(|i| (i % 3) as f32).collect();
    let mut whole = Model::new(network.clone(), Device::Cpu, 1).unwrap();
    let (expected, expected_counts) = whole.evaluate_with_confusion(&x, &y).unwrap();
    for ranks in [2, 3, 30] {
        let shared = Arc::new(Shared {
            barrier: Barrier::new(ranks),
            slots: Mutex::new(vec![Vec::new(); ranks]),
        });
        std::thread::scope(|scope| {
            for rank in 0..ranks {
                let comm = Threads {
                    rank,
                    size: ranks,
                    shared: shared.clone(),
                };
                let (network, x, y) = (&network, &x, &y);
                let expected_counts = &expected_counts;
                scope.spawn(move || {
                    let mut model = Model::new(network.clone(), Device::Cpu, 1).unwrap();
                    let (stats, counts) = model.evaluate_distributed(x, y, true, &comm).unwrap();
                    assert!(
                        (stats.loss - expected.loss).abs() <= 1e-6 * expected.loss.abs().max(1.0)
                    );
                    assert_eq!(stats.accuracy, expected.accuracy);
                    assert_eq!(counts.as_ref(), Some(expected_counts));
                });
            }
        });
    }
}
