//! The epoch loop: what one epoch means, shuffling, early stopping, resuming, and the recorded history.

mod common;

use wgtrain::data::{Dataset, Task};
use wgtrain::fit::{fit, FitConfig};
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::{Activation, Device, Loss, Model, Network, Optimizer, TrainConfig};

fn dataset(rows: usize) -> Dataset {
    let features: Vec<f32> = (0..rows * 2)
        .map(|i| ((i * 37 % 23) as f32 / 23.0) - 0.5)
        .collect();
    let targets = features
        .chunks(2)
        .map(|r| f32::from(u8::from(r[0] + r[1] > 0.0)))
        .collect();
    Dataset {
        features,
        feature_names: vec!["a".into(), "b".into()],
        target_name: "y".into(),
        targets,
        task: Task::Classify,
        class_names: vec!["0".into(), "1".into()],
        ignored_columns: Vec::new(),
        lines: Vec::new(),
        categories: Vec::new(),
        dropped_rows: 0,
    }
}

fn network() -> Network {
    Network::builder(2)
        .dense(4, Activation::Tanh)
        .dense(1, Activation::Sigmoid)
        .build(Loss::Bce)
        .expect("valid")
}

/// With no shuffling, one epoch of batch size B is ⌈n/B⌉ steps over consecutive rows in file order, each on
/// its batch's mean loss, the last batch partial.
#[test]
fn an_unshuffled_epoch_is_consecutive_batches_in_file_order() {
    let data = dataset(10);
    let config = FitConfig {
        epochs: 1,
        batch_size: 4,
        shuffle: false,
        optimizer: Optimizer::Sgd,
        learning_rate: 0.5,
        ..FitConfig::default()
    };
    let mut fitted = Model::new(network(), Device::Cpu, 1).expect("model");
    fit(&mut fitted, &data, None, &config, |_, _| Ok(())).expect("fit");
    assert_eq!(fitted.steps(), 3, "⌈10/4⌉ steps");
    let mut manual = Model::new(network(), Device::Cpu, 1).expect("model");
    for (start, end) in [(0, 4), (4, 8), (8, 10)] {
        manual
            .train_step(
                &data.features[start * 2..end * 2],
                &data.targets[start..end],
                &TrainConfig {
                    learning_rate: 0.5,
                    ..TrainConfig::default()
                },
            )
            .expect("step");
    }
    assert_eq!(
        fitted.parameters().expect("params"),
        manual.parameters().expect("params")
    );
}

#[test]
fn shuffling_is_seeded() {
    let data = dataset(40);
    let run = |seed| {
        let mut model = Model::new(network(), Device::Cpu, 1).expect("model");
        let config = FitConfig {
            epochs: 3,
            batch_size: 8,
            seed,
            ..FitConfig::default()
        };
        fit(&mut model, &data, None, &config, |_, _| Ok(())).expect("fit");
        model.parameters().expect("params")
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn history_records_every_epoch_and_the_callback_sees_them() {
    let data = dataset(60);
    let (train, val) = data.split(0.25, 0).expect("split");
    let mut model = Model::new(network(), Device::Cpu, 1).expect("model");
    let mut seen = Vec::new();
    let config = FitConfig {
        epochs: 5,
        batch_size: 8,
        learning_rate: 0.02,
        ..FitConfig::default()
    };
    let history = fit(&mut model, &train, Some(&val), &config, |r, _| {
        seen.push(r.epoch);
        Ok(())
    })
    .expect("fit");
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert_eq!(history.epochs.len(), 5);
    let last = history.last().expect("epochs");
    assert!(last.accuracy.is_some() && last.val_loss.is_some() && last.val_accuracy.is_some());
    assert!(history.epochs[4].loss < history.epochs[0].loss);
    // The reported validation numbers are those of the final parameters.
    let y = val.encode_targets(Loss::Bce, 1);
    let stats = model.evaluate(&val.features, &y).expect("evaluate");
    assert_eq!(Some(stats.loss), last.val_loss);
}

/// With patience, training stops once the validation loss has not improved for that many epochs, and the
/// model is left with the parameters of the best epoch.
#[test]
fn early_stopping_restores_the_best_epoch() {
    let data = dataset(60);
    let (train, val) = data.split(0.25, 0).expect("split");
    // A learning rate this high makes the validation loss bounce, so it stops improving early.
    let config = FitConfig {
        epochs: 200,
        batch_size: 4,
        learning_rate: 0.5,
        patience: Some(3),
        ..FitConfig::default()
    };
    let mut model = Model::new(network(), Device::Cpu, 1).expect("model");
    let history = fit(&mut model, &train, Some(&val), &config, |_, _| Ok(())).expect("fit");
    assert!(
        history.stopped_early,
        "expected an early stop in {} epochs",
        history.epochs.len()
    );
    let best = history.best_epoch.expect("best epoch");
    assert_eq!(history.epochs.len(), best + 3);
    let best_loss = history.epochs[best - 1].val_loss.expect("val loss");
    assert!(history
        .epochs
        .iter()
        .all(|r| r.val_loss.expect("val") >= best_loss));
    let y = val.encode_targets(Loss::Bce, 1);
    assert_eq!(
        model.evaluate(&val.features, &y).expect("evaluate").loss,
        best_loss,
        "best parameters restored"
    );
}

#[test]
fn fit_rejects_bad_settings() {
    let data = dataset(10);
    let mut model = Model::new(network(), Device::Cpu, 1).expect("model");
    for config in [
        FitConfig {
            epochs: 0,
            ..FitConfig::default()
        },
        FitConfig {
            batch_size: 0,
            ..FitConfig::default()
        },
        FitConfig {
            patience: Some(2),
            ..FitConfig::default()
        },
        FitConfig {
            learning_rate: f32::NAN,
            ..FitConfig::default()
        },
    ] {
        assert!(
            fit(&mut model, &data, None, &config, |_, _| Ok(())).is_err(),
            "{config:?}"
        );
    }
}

/// `fit` runs each epoch at the schedule's rate (set before its first step) and records it; a schedule
/// that follows the validation loss is refused without validation data, before any training.
#[test]
fn fit_follows_the_schedule() {
    let train = dataset(40);
    let mut model = Model::new(network(), Device::Cpu, 0).expect("model");
    let config = FitConfig {
        epochs: 10,
        batch_size: 4,
        shuffle: false,
        learning_rate: 0.1,
        optimizer: Optimizer::Sgd,
        schedule: LrSchedule {
            schedule: Schedule::Step {
                step_size: 3,
                gamma: 0.5,
            },
            warmup: 0,
        },
        ..FitConfig::default()
    };
    let history = fit(&mut model, &train, None, &config, |_, _| Ok(())).expect("fit");
    let recorded: Vec<f32> = history.epochs.iter().map(|r| r.learning_rate).collect();
    assert_eq!(
        recorded,
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125]
    );
    // Each epoch's steps ran at its rate: the same epochs by hand, one rate each, end at the same
    // parameters bit for bit.
    let mut by_hand = Model::new(network(), Device::Cpu, 0).expect("model");
    for &learning_rate in &recorded {
        let step = wgtrain::TrainConfig {
            batch_size: Some(4),
            learning_rate,
            optimizer: Optimizer::Sgd,
            ..wgtrain::TrainConfig::default()
        };
        by_hand
            .train_epoch(&train.features, &train.targets, None, &step)
            .expect("epoch");
    }
    assert_eq!(
        by_hand.parameters().expect("params"),
        model.parameters().expect("params")
    );
    let plateau = FitConfig {
        schedule: LrSchedule {
            schedule: Schedule::Plateau {
                factor: 0.5,
                patience: 1,
                min_lr: 0.0,
            },
            warmup: 0,
        },
        ..config
    };
    let before = model.parameters().expect("params");
    let err = fit(&mut model, &train, None, &plateau, |_, _| Ok(())).expect_err("refused");
    assert!(err.to_string().contains("validation"), "{err}");
    assert_eq!(
        model.parameters().expect("params"),
        before,
        "trained before refusing"
    );
}

/// Ten epochs in one run equal five, the state saved (parameters, optimizer state, history), and five
/// more from it in a fresh model: bitwise on the CPU backend, within the training tolerance on the GPU.
/// Adam's moments and step count, the shuffles and a plateau schedule all carry over.
#[test]
fn a_resumed_run_equals_an_unbroken_one() {
    let data = dataset(50);
    let (train, validation) = data.split(0.2, 3).expect("split");
    for device in common::devices() {
        let config = FitConfig {
            epochs: 10,
            batch_size: 8,
            learning_rate: 0.4,
            schedule: LrSchedule {
                schedule: Schedule::Plateau {
                    factor: 0.5,
                    patience: 1,
                    min_lr: 0.0,
                },
                warmup: 0,
            },
            ..FitConfig::default()
        };
        let mut unbroken = Model::new(network(), device, 7).expect("model");
        let whole = fit(&mut unbroken, &train, Some(&validation), &config, |_, _| {
            Ok(())
        })
        .expect("ten epochs");

        let mut first = Model::new(network(), device, 7).expect("model");
        let half = FitConfig {
            epochs: 5,
            ..config.clone()
        };
        let mut saved = None;
        let history = fit(
            &mut first,
            &train,
            Some(&validation),
            &half,
            |record, model| {
                if record.epoch == 5 {
                    saved = Some((
                        model.parameters()?,
                        model.optimizer_state()?.expect("trained"),
                    ));
                }
                Ok(())
            },
        )
        .expect("five epochs");
        let (params, state) = saved.expect("saved at epoch 5");
        let mut second = Model::new(network(), device, 99).expect("model");
        second.set_parameters(&params).expect("parameters");
        let resumed_config = FitConfig {
            resume_from: history.epochs.clone(),
            ..config.clone()
        };
        let step = wgtrain::TrainConfig {
            optimizer: config.optimizer,
            learning_rate: config.learning_rate,
            ..wgtrain::TrainConfig::default()
        };
        second
            .restore_optimizer_state(&state, &step)
            .expect("restore");
        let resumed = fit(
            &mut second,
            &train,
            Some(&validation),
            &resumed_config,
            |_, _| Ok(()),
        )
        .expect("five more");
        assert_eq!(resumed.epochs.len(), 10);
        assert_eq!(second.steps(), unbroken.steps());
        let (a, b) = (
            second.parameters().expect("params"),
            unbroken.parameters().expect("params"),
        );
        if device == Device::Cpu {
            assert_eq!(resumed, whole, "the histories, bit for bit");
            assert_eq!(a, b, "the parameters, bit for bit");
        } else {
            for (x, y) in a.iter().zip(&b) {
                common::assert_close("resumed weights", &x.weights, &y.weights, common::TRAINING);
                common::assert_close("resumed bias", &x.bias, &y.bias, common::TRAINING);
            }
            let losses =
                |h: &wgtrain::fit::History| h.epochs.iter().map(|r| r.loss).collect::<Vec<_>>();
            common::assert_close(
                "resumed losses",
                &losses(&resumed),
                &losses(&whole),
                common::TRAINING,
            );
        }
        // The plateau schedule moved the rate in the second half, so replaying it mattered.
        let rates: Vec<f32> = whole.epochs.iter().map(|r| r.learning_rate).collect();
        assert!(
            rates[9] < rates[0],
            "{device}: the rate never moved: {rates:?}"
        );
    }
}

/// Each epoch's validation macro F1 (classification) and R² (regression) are scikit-learn's scores of the
/// model's predictions on the validation rows after that epoch, on both backends.
#[test]
fn validation_scores_follow_the_predictions_of_each_epoch() {
    let data = dataset(60);
    let (train, validation) = data.split(0.25, 1).expect("split");
    let mut regression = data.clone();
    regression.task = Task::Regress;
    regression.class_names.clear();
    regression.targets = data.features.chunks(2).map(|r| r[0] - 2.0 * r[1]).collect();
    let (reg_train, reg_validation) = regression.split(0.25, 1).expect("split");
    let linear = Network::builder(2)
        .dense(4, Activation::Tanh)
        .dense(1, Activation::Linear)
        .build(Loss::Mse)
        .expect("valid");
    for device in common::devices() {
        let config = FitConfig {
            epochs: 4,
            batch_size: 8,
            learning_rate: 0.05,
            ..FitConfig::default()
        };
        for (network, train, validation) in [
            (network(), &train, &validation),
            (linear.clone(), &reg_train, &reg_validation),
        ] {
            let mut model = Model::new(network, device, 2).expect("model");
            let mut seen = 0;
            fit(
                &mut model,
                train,
                Some(validation),
                &config,
                |record, model| {
                    let predictions = model.predict(&validation.features)?;
                    if validation.task == Task::Classify {
                        let probabilities: Vec<f32> =
                            predictions.iter().flat_map(|&p| [1.0 - p, p]).collect();
                        let labels: Vec<usize> =
                            validation.targets.iter().map(|&t| t as usize).collect();
                        let m = wgtrain::metrics::classification(
                            &probabilities,
                            &labels,
                            &validation.class_names,
                        );
                        let f1 = record.val_f1.expect("a validation F1");
                        assert!(
                            (f64::from(f1) - m.macro_avg.f1).abs() < 1e-6,
                            "{f1} against {m:?}"
                        );
                        assert_eq!(record.val_r2, None);
                    } else {
                        let m = wgtrain::metrics::regression(&predictions, &validation.targets);
                        let r2 = record.val_r2.expect("a validation R²");
                        assert!((f64::from(r2) - m.r2).abs() < 1e-5, "{r2} against {}", m.r2);
                        assert_eq!(record.val_f1, None);
                    }
                    seen += 1;
                    Ok(())
                },
            )
            .expect("fit");
            assert_eq!(seen, 4);
        }
    }
}
