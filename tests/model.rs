//! Network validation, parameter counting and initialisation, the model API's checks, and the execution
//! model: one submit per training step, no readback and no allocation after the first step.

mod common;

use common::{assert_close, gpu_backend, uniform, TRAINING};
use wgtrain::{
    Activation, Backend, Device, Error, LayerParams, Loss, Model, Network, Optimizer, Shape,
    TrainConfig,
};

fn invalid_network(result: wgtrain::Result<Network>, words: &[&str]) {
    match result {
        Err(Error::InvalidNetwork(message)) => {
            for word in words {
                assert!(
                    message.contains(word),
                    "`{message}` should mention `{word}`"
                );
            }
        }
        other => panic!("expected InvalidNetwork mentioning {words:?}, got {other:?}"),
    }
}

#[test]
fn invalid_combinations_are_rejected() {
    let b = || Network::builder(3);
    invalid_network(
        b().dense(4, Activation::Softmax)
            .dense(2, Activation::Softmax)
            .build(Loss::Ce),
        &["softmax", "output layer", "layer 1"],
    );
    invalid_network(
        b().dense(2, Activation::Sigmoid).build(Loss::Ce),
        &["ce", "softmax", "sigmoid"],
    );
    invalid_network(
        b().dense(2, Activation::Softmax).build(Loss::Bce),
        &["bce", "sigmoid", "softmax"],
    );
    invalid_network(
        b().dense(1, Activation::Linear).build(Loss::Bce),
        &["bce", "sigmoid", "linear"],
    );
    invalid_network(
        b().dense(0, Activation::Relu)
            .dense(1, Activation::Linear)
            .build(Loss::Mse),
        &["layer 0 (dense:0)", "got 0"],
    );
    invalid_network(
        Network::builder(0)
            .dense(1, Activation::Linear)
            .build(Loss::Mse),
        &["input width", "got 0"],
    );
    invalid_network(b().build(Loss::Mse), &["at least one layer"]);
    invalid_network(
        b().dense(2, Activation::LeakyRelu(-0.5))
            .dense(1, Activation::Linear)
            .build(Loss::Sse),
        &["slope", "-0.5"],
    );
    invalid_network(
        b().dense(2, Activation::LeakyRelu(f32::NAN))
            .dense(1, Activation::Linear)
            .build(Loss::Sse),
        &["slope"],
    );
    // The valid pairings build.
    assert!(b().dense(2, Activation::Softmax).build(Loss::Mse).is_ok());
    assert!(b().dense(1, Activation::Sigmoid).build(Loss::Sse).is_ok());
}

#[test]
fn names_parse_and_unknown_names_are_errors() {
    for a in Activation::ALL {
        assert_eq!(a.name().parse::<Activation>().expect("parses"), a);
    }
    for l in Loss::ALL {
        assert_eq!(l.name().parse::<Loss>().expect("parses"), l);
    }
    for d in [Device::Auto, Device::Gpu, Device::Fallback, Device::Cpu] {
        assert_eq!(d.name().parse::<Device>().expect("parses"), d);
    }
    let err = "swish".parse::<Activation>().unwrap_err();
    assert!(
        matches!(err, Error::InvalidValue { .. }) && err.to_string().contains("swish"),
        "{err}"
    );
    assert!("hinge"
        .parse::<Loss>()
        .unwrap_err()
        .to_string()
        .contains("hinge"));
    let err = "tpu".parse::<Device>().unwrap_err().to_string();
    assert!(
        err.contains("no adapter name contains `tpu`") && err.contains("gpu:N"),
        "{err}"
    );
    assert_eq!(
        "gpu:3".parse::<Device>().expect("an index"),
        Device::Adapter(3)
    );
    assert_eq!(Device::Adapter(3).to_string(), "gpu:3");
    for api in wgtrain::gpu::GpuApi::ALL {
        let device: Device = api.name().parse().expect("an API keyword");
        assert_eq!(device, Device::Api(api));
        assert_eq!(device.to_string(), api.name());
    }
    assert_eq!(
        "gl".parse::<Device>().expect("gl"),
        Device::Api(wgtrain::gpu::GpuApi::Gl)
    );
    assert!("gpu:x"
        .parse::<Device>()
        .unwrap_err()
        .to_string()
        .contains("gpu:N"));
}

#[test]
fn the_3_5_5_5_2_network_has_92_parameters() {
    let net = Network::builder(3)
        .dense(5, Activation::Relu)
        .dense(5, Activation::Relu)
        .dense(5, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    assert_eq!(net.parametrised_layers(), vec![0, 2, 4, 6]);
    let per_layer: Vec<Vec<u128>> = net
        .parametrised_layers()
        .into_iter()
        .map(|i| net.params(i).iter().map(|p| p.len()).collect())
        .collect();
    assert_eq!(
        per_layer,
        vec![vec![15, 5], vec![25, 5], vec![25, 5], vec![10, 2]]
    );
    assert_eq!(
        net.params(6)[0].torch_shape,
        vec![2, 5],
        "[out, in] as nn.Linear"
    );
    assert_eq!(net.parameter_count(), 92);
    let summary = net.summary();
    assert!(summary.contains("total parameters: 92"), "{summary}");
    let rows: Vec<Vec<&str>> = summary
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.contains(&vec!["input", "3"]), "{summary}");
    assert!(rows.contains(&vec!["0", "dense:5", "5", "20"]), "{summary}");
    assert!(rows.contains(&vec!["1", "relu", "5", "0"]), "{summary}");
    assert!(rows.contains(&vec!["6", "dense:2", "2", "12"]), "{summary}");
    assert!(rows.contains(&vec!["7", "softmax", "2", "0"]), "{summary}");
}

#[test]
fn initialisation_is_seeded_he_or_glorot_with_zero_bias() {
    let net = Network::builder(50)
        .dense(40, Activation::Relu)
        .dense(30, Activation::Tanh)
        .dense(1, Activation::Linear)
        .build(Loss::Mse)
        .expect("valid");
    let a = net.init_parameters(3);
    assert_eq!(a, net.init_parameters(3), "same seed, same parameters");
    assert_ne!(a, net.init_parameters(4), "another seed, other parameters");
    let he = (6.0f32 / 50.0).sqrt();
    let glorot = (6.0f32 / (40.0 + 30.0)).sqrt();
    let max_abs = |w: &[f32]| w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(max_abs(&a[0].weights) <= he && max_abs(&a[0].weights) > 0.9 * he);
    assert!(max_abs(&a[1].weights) <= glorot && max_abs(&a[1].weights) > 0.9 * glorot);
    assert!(a.iter().all(|l| l.bias.iter().all(|&b| b == 0.0)));
}

fn small_model(device: Device) -> Model {
    let net = Network::builder(3)
        .dense(4, Activation::Tanh)
        .dense(3, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    Model::new(net, device, 0).expect("model")
}

#[test]
fn bad_shapes_and_values_are_typed_errors() {
    let mut model = small_model(Device::Cpu);
    let config = TrainConfig {
        iterations: 1,
        batch_size: None,
        learning_rate: 0.1,
        ..TrainConfig::default()
    };
    let shape = |r: wgtrain::Result<()>, words: &[&str]| match r {
        Err(e @ Error::Shape { .. }) => words
            .iter()
            .for_each(|w| assert!(e.to_string().contains(w), "`{e}` lacks `{w}`")),
        other => panic!("expected a shape error, got {other:?}"),
    };
    let value = |r: wgtrain::Result<()>, words: &[&str]| match r {
        Err(e @ Error::InvalidValue { .. }) => words
            .iter()
            .for_each(|w| assert!(e.to_string().contains(w), "`{e}` lacks `{w}`")),
        other => panic!("expected an invalid-value error, got {other:?}"),
    };
    shape(
        model.train(&[1.0; 7], &[0.0, 1.0], &config),
        &["inputs", "multiple of 3", "got 7"],
    );
    shape(
        model.train(&[1.0; 6], &[0.0], &config),
        &["targets", "2 values", "got 1"],
    );
    value(
        model.train(&[1.0; 6], &[0.0, 3.0], &config),
        &["targets", "row 2", "0..3"],
    );
    value(
        model.train(&[1.0; 6], &[0.0, 1.5], &config),
        &["targets", "row 2"],
    );
    value(
        model.train(&[1.0, f32::NAN, 1.0, 1.0, 1.0, 1.0], &[0.0, 1.0], &config),
        &["inputs", "row 1 column 2", "NaN"],
    );
    value(
        model.train(
            &[1.0; 6],
            &[0.0, 1.0],
            &TrainConfig {
                learning_rate: 0.0,
                ..config
            },
        ),
        &["learning rate", "> 0"],
    );
    value(
        model.train(
            &[1.0; 6],
            &[0.0, 1.0],
            &TrainConfig {
                batch_size: Some(0),
                ..config
            },
        ),
        &["batch size"],
    );
    assert!(
        matches!(model.loss(), Err(Error::InvalidValue { .. })),
        "no loss before a step"
    );
    shape(
        model.predict(&[1.0; 4]).map(|_| ()),
        &["inputs", "multiple of 3"],
    );
    let wrong = vec![
        LayerParams {
            weights: vec![0.0; 12],
            bias: vec![0.0; 4],
            state: vec![],
        },
        LayerParams {
            weights: vec![0.0; 11],
            bias: vec![0.0; 3],
            state: vec![],
        },
    ];
    shape(
        model.set_parameters(&wrong),
        &["layer 2 weights", "12", "got 11"],
    );
}

#[test]
fn parameters_round_trip_on_every_backend() {
    let mut devices = vec![Device::Cpu];
    if gpu_backend().is_some() {
        devices.push(Device::Fallback);
    }
    for device in devices {
        let mut model = small_model(device);
        let params: Vec<LayerParams> = [(3 * 4, 4), (4 * 3, 3)]
            .iter()
            .enumerate()
            .map(|(i, &(w, b))| LayerParams {
                weights: uniform(i as u64, w, -1.0, 1.0),
                bias: uniform(9 + i as u64, b, -1.0, 1.0),
                state: vec![],
            })
            .collect();
        model.set_parameters(&params).expect("set");
        assert_eq!(model.parameters().expect("get"), params, "on {device}");
    }
}

/// Mini-batches are consecutive rows in order; each step uses its batch's mean loss.
#[test]
fn mini_batches_are_consecutive_row_slices() {
    let net = Network::builder(2)
        .dense(3, Activation::Tanh)
        .dense(1, Activation::Linear)
        .build(Loss::Mse)
        .expect("valid");
    let x = uniform(1, 10, -1.0, 1.0);
    let y = uniform(2, 5, -1.0, 1.0);
    let mut batched = Model::new(net.clone(), Device::Cpu, 0).expect("model");
    batched
        .train(
            &x,
            &y,
            &TrainConfig {
                iterations: 4,
                batch_size: Some(2),
                learning_rate: 0.1,
                ..TrainConfig::default()
            },
        )
        .expect("train");
    let mut manual = Model::new(net, Device::Cpu, 0).expect("model");
    // 5 rows in batches of 2: rows 0-1, 2-3, the partial batch 4, then wrap to 0-1.
    for (start, end) in [(0, 2), (2, 4), (4, 5), (0, 2)] {
        manual
            .train_step(
                &x[start * 2..end * 2],
                &y[start..end],
                &TrainConfig {
                    learning_rate: 0.1,
                    ..TrainConfig::default()
                },
            )
            .expect("step");
    }
    assert_eq!(
        batched.parameters().expect("params"),
        manual.parameters().expect("params")
    );
    assert_eq!(batched.loss().expect("loss"), manual.loss().expect("loss"));
}

/// Counts what the backend does: after the first step, each step is exactly one submit, with no readback
/// and no new buffer, bind group or pipeline, full-batch and mini-batch alike.
fn one_submit_per_step(backend: Box<dyn Backend>) {
    let net = Network::builder(5)
        .dense(8, Activation::Relu)
        .dense(6, Activation::Sigmoid)
        .dense(3, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    let mut model = Model::with_backend(net, backend, 0).expect("model");
    let x = uniform(3, 10 * 5, -1.0, 1.0);
    let y: Vec<f32> = (0..10).map(|i| (i % 3) as f32).collect();
    for batch_size in [None, Some(4)] {
        let config = TrainConfig {
            iterations: 3,
            batch_size,
            learning_rate: 0.1,
            ..TrainConfig::default()
        };
        model
            .train(&x, &y, &config)
            .expect("warm-up covers every batch size");
        let before = model.counters();
        model
            .train(
                &x,
                &y,
                &TrainConfig {
                    iterations: 20,
                    ..config
                },
            )
            .expect("train");
        let after = model.counters();
        assert_eq!(
            after.submits - before.submits,
            20,
            "one submit per step ({batch_size:?})"
        );
        assert_eq!(
            after.readbacks, before.readbacks,
            "no readback inside training ({batch_size:?})"
        );
        assert_eq!(
            after.allocations, before.allocations,
            "no allocation after warm-up ({batch_size:?})"
        );
        let loss = model.loss().expect("loss");
        assert!(loss.is_finite());
        assert_eq!(
            model.counters().readbacks,
            after.readbacks + 1,
            "the loss is read only when asked"
        );
    }
}

/// An epoch of 10 rows in batches of 4 (the last one partial): 3 submits, 1 readback (its loss and
/// accuracy), and nothing created after the first step of the first epoch.
fn epochs_make_nothing_after_the_first_step(backend: Box<dyn Backend>) {
    let net = Network::builder(5)
        .dense(8, Activation::Relu)
        .dense(3, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    let mut model = Model::with_backend(net, backend, 0).expect("model");
    let x = uniform(3, 10 * 5, -1.0, 1.0);
    let y: Vec<f32> = (0..10).map(|i| (i % 3) as f32).collect();
    let config = TrainConfig {
        batch_size: Some(4),
        learning_rate: 0.1,
        ..TrainConfig::default()
    };
    for _ in 0..3 {
        let before = model.counters();
        model.train_epoch(&x, &y, None, &config).expect("epoch");
        let after = model.counters();
        assert_eq!(after.submits - before.submits, 3);
        assert_eq!(after.readbacks - before.readbacks, 1);
    }
    let first = model.counters_after_first_step().expect("steps were taken");
    assert_eq!(
        model.counters().allocations,
        first.allocations,
        "allocations after the first step"
    );
}

#[test]
fn cpu_epochs_make_nothing_after_the_first_step() {
    epochs_make_nothing_after_the_first_step(Box::new(wgtrain::CpuBackend::new()));
}

#[test]
fn gpu_epochs_make_nothing_after_the_first_step() {
    let Some(gpu) = gpu_backend() else { return };
    epochs_make_nothing_after_the_first_step(Box::new(gpu));
}

#[test]
fn cpu_step_is_one_submit_without_readback() {
    one_submit_per_step(Box::new(wgtrain::CpuBackend::new()));
}

#[test]
fn gpu_step_is_one_submit_without_readback() {
    let Some(gpu) = gpu_backend() else { return };
    one_submit_per_step(Box::new(gpu));
}

#[test]
fn gradients_do_not_update_and_match_across_backends() {
    let Some(gpu) = gpu_backend() else { return };
    let net = Network::builder(3)
        .dense(5, Activation::LeakyRelu(0.1))
        .dense(2, Activation::Sigmoid)
        .build(Loss::Bce)
        .expect("valid");
    let x = uniform(4, 7 * 3, -1.0, 1.0);
    let y: Vec<f32> = (0..14).map(|i| (i % 2) as f32).collect();
    let mut cpu = Model::new(net.clone(), Device::Cpu, 1).expect("cpu");
    let mut gpu = Model::with_backend(net, Box::new(gpu), 1).expect("gpu");
    let before = cpu.parameters().expect("params");
    let (cpu_loss, cpu_grads) = cpu.gradients(&x, &y).expect("cpu gradients");
    let (gpu_loss, gpu_grads) = gpu.gradients(&x, &y).expect("gpu gradients");
    assert_eq!(
        cpu.parameters().expect("params"),
        before,
        "gradients() must not update"
    );
    assert_close("loss", &[gpu_loss], &[cpu_loss], TRAINING);
    for (g, c) in gpu_grads.iter().zip(&cpu_grads) {
        assert_close("weight gradient", &g.weights, &c.weights, TRAINING);
        assert_close("bias gradient", &g.bias, &c.bias, TRAINING);
    }
}

/// A profiled step names every kernel of the step in order, times each, and trains exactly like a plain step.
fn profiled_step_is_a_step(make: &dyn Fn() -> Box<dyn Backend>, timed: bool) {
    let net = Network::builder(4)
        .dense(6, Activation::Tanh)
        .dense(2, Activation::Sigmoid)
        .build(Loss::Bce)
        .expect("valid");
    let x = uniform(8, 5 * 4, -1.0, 1.0);
    let y: Vec<f32> = (0..10).map(|i| (i % 2) as f32).collect();
    let config = TrainConfig {
        learning_rate: 0.1,
        ..TrainConfig::default()
    };
    let mut profiled = Model::with_backend(net.clone(), make(), 2).expect("model");
    let mut plain = Model::with_backend(net, make(), 2).expect("model");
    let kernels = profiled.profile_step(&x, &y, &config).expect("profile");
    plain.train(&x, &y, &config).expect("step");
    assert_eq!(
        profiled.parameters().expect("params"),
        plain.parameters().expect("params")
    );
    assert_eq!(profiled.steps(), 1);
    match kernels {
        Some(kernels) => {
            let names: Vec<&str> = kernels.iter().map(|(name, _)| *name).collect();
            assert_eq!(names.first(), Some(&"matmul_bias_act"), "{names:?}");
            assert_eq!(names.last(), Some(&"sgd_update"), "{names:?}");
            assert!(
                names.contains(&"loss_grad")
                    && names.contains(&"matmul_tn")
                    && names.contains(&"matmul_nt")
            );
            assert!(
                kernels.iter().all(|(_, us)| us.is_finite() && *us >= 0.0),
                "{kernels:?}"
            );
        }
        None => assert!(!timed, "this device can time kernels"),
    }
}

#[test]
fn cpu_profiled_step() {
    profiled_step_is_a_step(&|| Box::new(wgtrain::CpuBackend::new()), true);
}

#[test]
fn gpu_profiled_step() {
    let Some(gpu) = gpu_backend() else { return };
    let timed = gpu
        .device()
        .features()
        .contains(wgtrain::gpu::TIMESTAMP_QUERY);
    drop(gpu);
    profiled_step_is_a_step(&|| Box::new(gpu_backend().expect("adapter")), timed);
}

/// Batch norm with PyTorch's conventions: one training pass moves the running mean to 0.1·mean and the
/// running variance to 0.9 + 0.1·(unbiased variance), counts one batch, and evaluation then normalises
/// with those running statistics (here, a batch norm first, on the inputs themselves, then a dense layer).
#[test]
fn batch_norm_follows_pytorch_conventions() {
    let network = Network::builder(3)
        .spec("batchnorm,dense:2")
        .and_then(|b| b.build(Loss::Mse))
        .expect("valid");
    let mut model = Model::new(network, Device::Cpu, 1).expect("model");
    let rows = 6;
    let x = uniform(5, rows * 3, -2.0, 2.0);
    let y = uniform(6, rows * 2, -1.0, 1.0);
    model.gradients(&x, &y).expect("one training-mode pass");
    let params = model.parameters().expect("params");
    let [running_mean, running_var, tracked] = &params[0].state[..] else {
        panic!(
            "batch norm keeps three state tensors: {:?}",
            params[0].state
        )
    };
    assert_eq!(tracked, &vec![1.0]);
    for f in 0..3 {
        let column: Vec<f64> = (0..rows).map(|r| f64::from(x[r * 3 + f])).collect();
        let mean = column.iter().sum::<f64>() / rows as f64;
        let unbiased = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (rows - 1) as f64;
        assert_close(
            "running mean",
            &[running_mean[f]],
            &[(0.1 * mean) as f32],
            TRAINING,
        );
        assert_close(
            "running var",
            &[running_var[f]],
            &[(0.9 + 0.1 * unbiased) as f32],
            TRAINING,
        );
    }
    // Evaluation: (x − running mean) / √(running var + 1e-5), γ = 1, β = 0, then the dense layer.
    let dense = &params[1];
    let predicted = model.predict(&x).expect("predict");
    for r in 0..rows {
        let normal: Vec<f32> = (0..3)
            .map(|f| (x[r * 3 + f] - running_mean[f]) / (running_var[f] + 1e-5).sqrt())
            .collect();
        for o in 0..2 {
            let expected: f32 = dense.bias[o]
                + (0..3)
                    .map(|f| normal[f] * dense.weights[f * 2 + o])
                    .sum::<f32>();
            assert_close(
                "eval output",
                &[predicted[r * 2 + o]],
                &[expected],
                TRAINING,
            );
        }
    }
}

/// `train_step` takes the rule: Adam steps by hand equal `train` with Adam. Switching to another rule
/// after steps of one with state is an error that changes nothing, until `reset_optimizer`; from a rule
/// without state (SGD) to Adam is allowed, and Adam then starts from zeroed moments, as a fresh model
/// given the same parameters does.
#[test]
fn train_step_takes_the_optimizer_and_switching_rules_is_explicit() -> wgtrain::Result<()> {
    let network = || {
        Network::builder(2)
            .dense(3, Activation::Tanh)
            .dense(1, Activation::Sigmoid)
            .build(Loss::Bce)
    };
    let x = [0., 0., 0., 1., 1., 0., 1., 1.];
    let y = [0., 1., 1., 0.];
    let adam = TrainConfig {
        optimizer: Optimizer::ADAM,
        learning_rate: 0.01,
        ..TrainConfig::default()
    };
    let sgd = TrainConfig::default();
    let mut trained = Model::new(network()?, Device::Cpu, 3)?;
    trained.train(
        &x,
        &y,
        &TrainConfig {
            iterations: 3,
            ..adam
        },
    )?;
    let mut stepped = Model::new(network()?, Device::Cpu, 3)?;
    for _ in 0..3 {
        stepped.train_step(&x, &y, &adam)?;
    }
    assert_eq!(trained.parameters()?, stepped.parameters()?);

    let err = stepped.train_step(&x, &y, &sgd).unwrap_err().to_string();
    assert!(
        err.contains("sgd after 3 steps of adam") && err.contains("reset_optimizer"),
        "{err}"
    );
    trained.train_step(&x, &y, &adam)?;
    stepped.train_step(&x, &y, &adam)?;
    assert_eq!(
        trained.parameters()?,
        stepped.parameters()?,
        "the refused switch kept Adam's state"
    );

    stepped.reset_optimizer();
    stepped.train_step(&x, &y, &sgd)?;
    let start = stepped.parameters()?;
    stepped.train_step(&x, &y, &adam)?;
    let mut fresh = Model::new(network()?, Device::Cpu, 3)?;
    fresh.set_parameters(&start)?;
    fresh.train_step(&x, &y, &adam)?;
    assert_eq!(stepped.parameters()?, fresh.parameters()?);
    Ok(())
}

/// Parameters and gradients by name, in PyTorch's layout: the names a checkpoint uses, each dense weight
/// `[out, in]` (the transpose of `parameters()`'s), the running statistics among the parameters but not
/// the gradients, and the gradient values those of `gradients()`.
#[test]
fn named_parameters_and_gradients_follow_pytorch() -> wgtrain::Result<()> {
    let network = Network::builder(3)
        .spec("dense:4,batchnorm,relu,dense:2,softmax")?
        .build(Loss::Ce)?;
    let mut model = Model::new(network, Device::Cpu, 5)?;
    let x = uniform(1, 5 * 3, -1.0, 1.0);
    let y = [0., 1., 1., 0., 1.];
    model.train(&x, &y, &TrainConfig::default())?;
    let named = model.named_parameters()?;
    let names: Vec<&str> = named.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.1.running_mean",
            "layers.1.running_var",
            "layers.1.num_batches_tracked",
            "layers.3.weight",
            "layers.3.bias"
        ]
    );
    let params = model.parameters()?;
    assert_eq!(named[0].shape, [4, 3]);
    for o in 0..4 {
        for i in 0..3 {
            assert_eq!(named[0].values[o * 3 + i], params[0].weights[i * 4 + o]);
        }
    }
    assert_eq!(named[7].shape, [2, 4]);
    assert_eq!(named[4].values, params[1].state[0], "running_mean");

    let (loss, grads) = model.gradients(&x, &y)?;
    let (named_loss, named_grads) = model.named_gradients(&x, &y)?;
    assert_eq!(loss, named_loss);
    let grad_names: Vec<&str> = named_grads.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        grad_names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.3.weight",
            "layers.3.bias"
        ]
    );
    for o in 0..2 {
        for i in 0..4 {
            assert_eq!(
                named_grads[4].values[o * 4 + i],
                grads[2].weights[i * 2 + o]
            );
        }
    }
    assert_eq!(named_grads[5].values, grads[2].bias);
    assert!(named_grads[0].values.iter().any(|&g| g != 0.0));
    Ok(())
}

/// A dense layer over a sequence acts on every position alike, as `nn.Linear` on `[N, T, d]`: its outputs
/// are those of the same layer over the positions as rows; a checkpoint keeps the sequence shape; the
/// layers that need rows or images refuse one, naming the layer and the shape.
#[test]
fn dense_over_a_sequence_is_dense_at_every_position() -> wgtrain::Result<()> {
    let (positions, features, rows) = (3, 4, 5);
    let sequence = Shape::Sequence {
        positions,
        features,
    };
    let over_sequence = Network::builder_for(sequence)
        .spec("dense:6,tanh,flatten,dense:2,softmax")?
        .build(Loss::Ce)?;
    assert_eq!(
        over_sequence.shapes()[0].to_string(),
        "3x6 (positions x features)"
    );
    assert_eq!(over_sequence.inputs(), 12);
    let mut model = Model::new(over_sequence.clone(), Device::Cpu, 2)?;
    let x = uniform(9, rows * positions * features, -1.0, 1.0);
    let hidden = model.layer_outputs(&x)?.remove(0);

    let per_position = Network::builder(features)
        .dense(6, Activation::Tanh)
        .build(Loss::Mse)?;
    let mut rows_model = Model::new(per_position, Device::Cpu, 0)?;
    let first = model.parameters()?.remove(0);
    rows_model.set_parameters(&[first])?;
    let expected = rows_model.predict(&x)?; // the same floats read as rows*positions rows of 4
    assert_close("dense over a sequence", &hidden, &expected, TRAINING);

    let dir = std::env::temp_dir().join(format!("wgtrain-seq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("seq.safetensors");
    let mut meta = wgtrain::checkpoint::ModelMeta::describe(&over_sequence);
    meta.task = wgtrain::data::Task::Classify;
    meta.class_names = vec!["a".into(), "b".into()];
    wgtrain::checkpoint::save(&path, &model.parameters()?, &meta)?;
    let (loaded, params, saved) = wgtrain::checkpoint::load(&path)?;
    assert_eq!(loaded.input_shape(), sequence);
    assert_eq!(saved.input_shape, Some(vec![positions, features]));
    let mut reloaded = Model::new(loaded, Device::Cpu, 0)?;
    reloaded.set_parameters(&params)?;
    assert_eq!(reloaded.predict(&x)?, model.predict(&x)?);
    let _ = std::fs::remove_dir_all(&dir);

    for (spec, loss, words) in [
        (
            "conv:2:3,flatten,dense:2,softmax",
            Loss::Ce,
            "layer 0 (conv:2:3) takes an image",
        ),
        (
            "batchnorm,flatten,dense:2,softmax",
            Loss::Ce,
            "layer 0 (batchnorm) takes rows or images",
        ),
        (
            "dense:2,softmax",
            Loss::Ce,
            "layer 1 (softmax) takes a flat input",
        ),
        ("dense:2", Loss::Mse, "must give a flat output"),
    ] {
        let err = Network::builder_for(sequence)
            .spec(spec)
            .and_then(|b| b.build(loss))
            .expect_err(spec)
            .to_string();
        assert!(
            err.contains(words) && err.contains("(positions x features)"),
            "{spec}: {err}"
        );
    }
    Ok(())
}
