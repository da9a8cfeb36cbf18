//! Whole training runs on the CPU reference and the wgpu backend from the same seed agree.

mod common;

use common::{assert_close, gpu_backend, uniform, TRAINING};
use wgtrain::ops::ConvAlgorithm;
use wgtrain::{Activation, Backend, Device, Loss, Model, Network, Optimizer, TrainConfig};

/// 50 mini-batch steps of a 3-layer network on each backend from the same seed: the loss after every step
/// and the final parameters agree within [`TRAINING`] (relative 1e-3).
#[test]
fn whole_run_parity() {
    let Some(gpu) = gpu_backend() else { return };
    let mut gpu: Option<Box<dyn Backend>> = Some(Box::new(gpu));
    let cases = [
        (
            Activation::Tanh,
            Activation::Relu,
            Activation::Softmax,
            Loss::Ce,
        ),
        (
            Activation::LeakyRelu(0.01),
            Activation::Sigmoid,
            Activation::Sigmoid,
            Loss::Bce,
        ),
        (
            Activation::Relu,
            Activation::Tanh,
            Activation::Linear,
            Loss::Mse,
        ),
        (
            Activation::Sigmoid,
            Activation::LeakyRelu(0.1),
            Activation::Sigmoid,
            Loss::Sse,
        ),
        (
            Activation::Tanh,
            Activation::Tanh,
            Activation::Softmax,
            Loss::Mse,
        ),
    ];
    for (case, &(first, second, output, loss)) in cases.iter().enumerate() {
        let outputs = if output == Activation::Softmax { 3 } else { 2 };
        let network = Network::builder(6)
            .dense(16, first)
            .dense(12, second)
            .dense(outputs, output)
            .build(loss)
            .expect("valid network");
        let rows = 100;
        let x = uniform(1000 + case as u64, rows * 6, -2.0, 2.0);
        let y: Vec<f32> = match loss {
            Loss::Ce => (0..rows).map(|i| (i % outputs) as f32).collect(),
            Loss::Bce => (0..rows * outputs)
                .map(|i| ((i * 7) % 3 == 0) as u8 as f32)
                .collect(),
            _ if output == Activation::Softmax => (0..rows * outputs)
                .map(|i| ((i % outputs) == (i / outputs) % outputs) as u8 as f32)
                .collect(),
            _ => uniform(2000 + case as u64, rows * outputs, -1.0, 1.0),
        };
        // Every optimizer, with and without weight decay, across the cases.
        let (optimizer, learning_rate, weight_decay) = [
            (Optimizer::Sgd, 0.05, 0.0),
            (Optimizer::ADAM, 0.005, 0.0),
            (Optimizer::Momentum { momentum: 0.9 }, 0.02, 1e-3),
            (Optimizer::ADAM, 0.005, 1e-2),
            (Optimizer::Sgd, 0.05, 1e-3),
        ][case];
        let config = TrainConfig {
            iterations: 1,
            batch_size: Some(32),
            learning_rate,
            optimizer,
            weight_decay,
            clipping: Default::default(),
        };
        let mut cpu_model = Model::new(network.clone(), Device::Cpu, 7).expect("cpu model");
        let mut gpu_model =
            Model::with_backend(network, gpu.take().expect("backend"), 7).expect("gpu model");
        let (mut cpu_losses, mut gpu_losses) = (Vec::new(), Vec::new());
        for _ in 0..50 {
            cpu_model.train(&x, &y, &config).expect("cpu step");
            gpu_model.train(&x, &y, &config).expect("gpu step");
            cpu_losses.push(cpu_model.loss().expect("cpu loss"));
            gpu_losses.push(gpu_model.loss().expect("gpu loss"));
        }
        let what = format!("case {case} ({first}, {second}, {output}, {loss}, {optimizer})");
        assert!(
            cpu_losses[49] < cpu_losses[0],
            "{what}: loss did not fall: {cpu_losses:?}"
        );
        assert_close(
            &format!("{what} losses"),
            &gpu_losses,
            &cpu_losses,
            TRAINING,
        );
        let cpu_params = cpu_model.parameters().expect("cpu params");
        let gpu_params = gpu_model.parameters().expect("gpu params");
        for (i, (g, c)) in gpu_params.iter().zip(&cpu_params).enumerate() {
            assert_close(
                &format!("{what} layer {i} weights"),
                &g.weights,
                &c.weights,
                TRAINING,
            );
            assert_close(
                &format!("{what} layer {i} bias"),
                &g.bias,
                &c.bias,
                TRAINING,
            );
        }
        // Hand the device on to the next case instead of opening another one.
        gpu = Some(gpu_model.into_backend());
    }
}

/// Shuffled epochs with Adam, then evaluation: the per-epoch mean loss and accuracy summed on the device agree
/// between backends, and match a host-side evaluation of the same parameters.
#[test]
fn epochs_and_evaluation_parity() {
    let Some(gpu) = gpu_backend() else { return };
    let network = Network::builder(5)
        .dense(12, Activation::Relu)
        .dense(4, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid network");
    let rows = 90;
    let x = uniform(31, rows * 5, -2.0, 2.0);
    // A learnable rule: the class is the index of the largest of the first four features.
    let y: Vec<f32> = x
        .chunks(5)
        .map(|r| (0..4).fold(0, |best, j| if r[j] > r[best] { j } else { best }) as f32)
        .collect();
    let config = TrainConfig {
        batch_size: Some(16),
        learning_rate: 0.01,
        optimizer: Optimizer::ADAM,
        ..TrainConfig::default()
    };
    let mut cpu = Model::new(network.clone(), Device::Cpu, 3).expect("cpu");
    let mut gpu = Model::with_backend(network, Box::new(gpu), 3).expect("gpu");
    let mut order: Vec<usize> = (0..rows).collect();
    let mut cpu_history = Vec::new();
    for epoch in 0..8 {
        order.rotate_left(7 * epoch + 1);
        let c = cpu
            .train_epoch(&x, &y, Some(&order), &config)
            .expect("cpu epoch");
        let g = gpu
            .train_epoch(&x, &y, Some(&order), &config)
            .expect("gpu epoch");
        assert_close(
            &format!("epoch {epoch} loss"),
            &[g.loss],
            &[c.loss],
            TRAINING,
        );
        assert_eq!(g.accuracy, c.accuracy, "epoch {epoch} accuracy");
        cpu_history.push(c);
    }
    assert!(
        cpu_history[7].loss < cpu_history[0].loss,
        "loss did not fall: {cpu_history:?}"
    );
    let c = cpu.evaluate(&x, &y).expect("cpu evaluate");
    let g = gpu.evaluate(&x, &y).expect("gpu evaluate");
    assert_close("evaluate loss", &[g.loss], &[c.loss], TRAINING);
    // The device-side sums agree with the host computing the same from predictions.
    let probabilities = cpu.predict(&x).expect("predict");
    let (mut loss, mut hits) = (0.0f64, 0.0);
    for (p, &label) in probabilities.chunks(4).zip(&y) {
        loss -= f64::from(p[label as usize]).ln();
        let best = (0..4).fold(0, |b, j| if p[j] > p[b] { j } else { b });
        hits += f64::from(u8::from(best == label as usize));
    }
    assert_close(
        "evaluate loss vs host",
        &[c.loss],
        &[(loss / rows as f64) as f32],
        TRAINING,
    );
    assert_close(
        "evaluate accuracy vs host",
        &[c.accuracy],
        &[(hits / rows as f64) as f32],
        TRAINING,
    );
    assert!(
        c.accuracy > 0.5,
        "the rule should be learnable: accuracy {}",
        c.accuracy
    );
}

/// Every step's loss, the final parameters (weights and bias of each layer) and the predictions of
/// `model` trained 20 steps on `(x, y)`.
type Run = (Vec<f32>, Vec<(Vec<f32>, Vec<f32>)>, Vec<f32>);

fn twenty_steps(model: &mut Model, x: &[f32], y: &[f32], config: &TrainConfig) -> Run {
    let mut losses = Vec::new();
    for _ in 0..20 {
        model.train(x, y, config).expect("step");
        losses.push(model.loss().expect("loss"));
    }
    let params = model.parameters().expect("parameters");
    let params = params.into_iter().map(|p| (p.weights, p.bias)).collect();
    (losses, params, model.predict(x).expect("predict"))
}

fn assert_runs_agree(what: &str, actual: &Run, expected: &Run) {
    assert_close(&format!("{what}: losses"), &actual.0, &expected.0, TRAINING);
    for (i, (a, e)) in actual.1.iter().zip(&expected.1).enumerate() {
        assert_close(&format!("{what}: layer {i} weights"), &a.0, &e.0, TRAINING);
        assert_close(&format!("{what}: layer {i} bias"), &a.1, &e.1, TRAINING);
    }
    assert_close(
        &format!("{what}: predictions"),
        &actual.2,
        &expected.2,
        TRAINING,
    );
}

/// A small CNN (every image layer kind: strided padded conv, max and average pooling, global average
/// pooling, an activation on its own after a pool, dropout, whose masks the devices draw alike) trained 20
/// steps from the same seed on the CPU and on the GPU, each running conv layers both ways (the patch
/// matrix and direct, `ConvAlgorithm`): every step's loss, the final parameters and the predictions agree
/// within [`TRAINING`], and the loss falls.
#[test]
fn cnn_run_parity() {
    let Some(gpu) = gpu_backend() else { return };
    let image = wgtrain::Shape::Image {
        channels: 2,
        height: 9,
        width: 9,
    };
    let mut gpu: Option<Box<dyn Backend>> = Some(Box::new(gpu));
    for (case, spec) in [
        "conv:4:3:pad=1,relu,maxpool:2,conv:6:3:stride=2:pad=1,tanh,flatten,dropout:0.3,dense:3,softmax",
        "conv:5:2,avgpool:2:stride=1,leaky_relu:0.1,conv:4:3,relu,gap,flatten,dense:3,softmax",
        "conv:4:3:pad=1,batchnorm,relu,maxpool:2,flatten,dense:8,batchnorm,tanh,dense:3,softmax",
    ]
    .into_iter()
    .enumerate()
    {
        let network = Network::builder_for(image)
            .spec(spec)
            .and_then(|b| b.build(Loss::Ce))
            .expect("valid network");
        let rows = 24;
        let x = uniform(50 + case as u64, rows * network.inputs(), -1.0, 1.0);
        let y: Vec<f32> = (0..rows).map(|i| (i % 3) as f32).collect();
        let config = TrainConfig {
            iterations: 1,
            batch_size: Some(8),
            learning_rate: 0.01,
            // Adam turns the rounding noise in a gradient that is zero in exact arithmetic (a bias
            // before batch norm, which subtracts it again) into full steps; momentum keeps it noise.
            optimizer: if spec.contains("batchnorm") {
                Optimizer::Momentum { momentum: 0.9 }
            } else {
                Optimizer::ADAM
            },
            weight_decay: 0.0,
            clipping: Default::default(),
        };
        let mut cpu_model = Model::new(network.clone(), Device::Cpu, 7).expect("cpu model");
        assert_eq!(cpu_model.conv_algorithm(), ConvAlgorithm::Direct);
        let cpu = twenty_steps(&mut cpu_model, &x, &y, &config);
        assert!(cpu.0[19] < cpu.0[0], "{spec}: loss did not fall: {:?}", cpu.0);
        for algorithm in [ConvAlgorithm::PatchMatrix, ConvAlgorithm::Direct] {
            let mut gpu_model =
                Model::with_backend(network.clone(), gpu.take().expect("backend"), 7)
                    .expect("gpu model");
            gpu_model.set_conv_algorithm(algorithm).expect("algorithm");
            let run = twenty_steps(&mut gpu_model, &x, &y, &config);
            assert_runs_agree(&format!("{spec}, GPU {}", algorithm.name()), &run, &cpu);
            gpu = Some(gpu_model.into_backend());
        }
    }
}

/// Dense layers over a sequence (every position a row of the product) train alike on the CPU and the GPU:
/// 20 Adam steps with a short last batch, every step's loss, the parameters and the predictions.
#[test]
fn sequence_run_parity() {
    let Some(gpu) = gpu_backend() else { return };
    let sequence = wgtrain::Shape::Sequence {
        positions: 5,
        features: 3,
    };
    let network = Network::builder_for(sequence)
        .spec("dense:7,tanh,dropout:0.2,dense:4,relu,flatten,dense:3,softmax")
        .and_then(|b| b.build(Loss::Ce))
        .expect("valid network");
    let rows = 21;
    let x = uniform(71, rows * network.inputs(), -1.0, 1.0);
    let y: Vec<f32> = (0..rows).map(|i| (i % 3) as f32).collect();
    let config = TrainConfig {
        iterations: 1,
        batch_size: Some(8),
        learning_rate: 0.01,
        optimizer: Optimizer::ADAM,
        ..TrainConfig::default()
    };
    let cpu = twenty_steps(
        &mut Model::new(network.clone(), Device::Cpu, 3).expect("cpu model"),
        &x,
        &y,
        &config,
    );
    assert!(cpu.0[19] < cpu.0[0], "loss did not fall: {:?}", cpu.0);
    let run = twenty_steps(
        &mut Model::with_backend(network, Box::new(gpu), 3).expect("gpu model"),
        &x,
        &y,
        &config,
    );
    assert_runs_agree("sequence", &run, &cpu);
}

/// The two ways of running conv layers train alike on the CPU too (no GPU needed): the patch matrix and
/// its transposes against the direct ops, 20 steps of a CNN with a strided conv and a first layer whose
/// input gradient is never needed.
#[test]
fn cpu_conv_algorithms_agree() {
    let image = wgtrain::Shape::Image {
        channels: 3,
        height: 10,
        width: 11,
    };
    let network = Network::builder_for(image)
        .spec("conv:4:3:pad=1,relu,maxpool:2,conv:5:2:stride=2,tanh,flatten,dense:3,softmax")
        .and_then(|b| b.build(Loss::Ce))
        .expect("valid network");
    let rows = 20;
    let x = uniform(61, rows * network.inputs(), -1.0, 1.0);
    let y: Vec<f32> = (0..rows).map(|i| (i % 3) as f32).collect();
    let config = TrainConfig {
        iterations: 1,
        batch_size: Some(7),
        learning_rate: 0.01,
        optimizer: Optimizer::ADAM,
        weight_decay: 0.0,
        clipping: Default::default(),
    };
    let runs = [ConvAlgorithm::Direct, ConvAlgorithm::PatchMatrix].map(|algorithm| {
        let mut model = Model::new(network.clone(), Device::Cpu, 3).expect("model");
        model.set_conv_algorithm(algorithm).expect("algorithm");
        twenty_steps(&mut model, &x, &y, &config)
    });
    assert!(
        runs[0].0[19] < runs[0].0[0],
        "loss did not fall: {:?}",
        runs[0].0
    );
    assert_runs_agree("direct vs patch matrix", &runs[0], &runs[1]);
}

/// Dropout draws a fresh mask each step from the model's seed: two runs from one seed end with the same bits,
/// another seed ends elsewhere, and in evaluation the layer passes values through (the same parameters
/// without it predict the same).
#[test]
fn dropout_runs_repeat_and_evaluation_passes_through() {
    let spec = |dropout: &str| format!("dense:16,relu,{dropout}dense:3,softmax");
    let build = |spec: &str| {
        Network::builder(5)
            .spec(spec)
            .and_then(|b| b.build(Loss::Ce))
            .expect("valid network")
    };
    let x = uniform(8, 40 * 5, -1.0, 1.0);
    let y: Vec<f32> = (0..40).map(|i| (i % 3) as f32).collect();
    let config = TrainConfig {
        iterations: 10,
        batch_size: Some(8),
        learning_rate: 0.1,
        optimizer: Optimizer::Sgd,
        weight_decay: 0.0,
        clipping: Default::default(),
    };
    let run = |seed: u64| {
        let mut model = Model::new(build(&spec("dropout:0.5,")), Device::Cpu, 3).expect("model");
        // Same initial parameters, different dropout keys: the seed keys both, so swap in seed 3's.
        let start = model.parameters().expect("params");
        let mut model = Model::new(build(&spec("dropout:0.5,")), Device::Cpu, seed).expect("model");
        model.set_parameters(&start).expect("set");
        model.train(&x, &y, &config).expect("train");
        model
    };
    let (mut a, mut b, mut c) = (run(3), run(3), run(4));
    let (pa, pb, pc) = (
        a.parameters().expect("a"),
        b.parameters().expect("b"),
        c.parameters().expect("c"),
    );
    assert_eq!(pa, pb, "one seed, the same run");
    assert_ne!(pa, pc, "another seed draws other masks");
    let mut plain = Model::new(build(&spec("")), Device::Cpu, 3).expect("model");
    plain.set_parameters(&pa).expect("set");
    assert_eq!(a.predict(&x).expect("a"), plain.predict(&x).expect("plain"));
}

/// Cross-entropy with class weights and label smoothing (`Model::set_cross_entropy`): 20 steps on each
/// backend agree; uniform weights leave the plain loss's gradients as they were (they cancel in the
/// weighted mean); the epoch's loss is the weighted mean; evaluation keeps the plain loss.
#[test]
fn weighted_cross_entropy_runs() {
    let network = Network::builder(5)
        .dense(8, Activation::Tanh)
        .dense(3, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid network");
    let rows = 60;
    let x = uniform(77, rows * 5, -2.0, 2.0);
    let y: Vec<f32> = (0..rows)
        .map(|i| [0.0, 0.0, 0.0, 1.0, 2.0][i % 5])
        .collect();
    let weighted = wgtrain::CrossEntropy {
        class_weights: Some(vec![0.5, 2.0, 3.0]),
        label_smoothing: 0.1,
    };
    let config = TrainConfig {
        batch_size: Some(16),
        learning_rate: 0.05,
        ..TrainConfig::default()
    };
    let mut cpu = Model::new(network.clone(), Device::Cpu, 5).expect("cpu");
    cpu.set_cross_entropy(&weighted).expect("weights");

    // Uniform weights cancel: the gradients are the plain loss's.
    let mut plain = Model::new(network.clone(), Device::Cpu, 5).expect("cpu");
    let (plain_loss, plain_grads) = plain.gradients(&x, &y).expect("gradients");
    plain
        .set_cross_entropy(&wgtrain::CrossEntropy {
            class_weights: Some(vec![2.0; 3]),
            label_smoothing: 0.0,
        })
        .expect("uniform");
    let (uniform_loss, uniform_grads) = plain.gradients(&x, &y).expect("gradients");
    assert_close(
        "uniform weights: loss",
        &[uniform_loss],
        &[plain_loss],
        TRAINING,
    );
    for (u, p) in uniform_grads.iter().zip(&plain_grads) {
        assert_close(
            "uniform weights: gradients",
            &u.weights,
            &p.weights,
            TRAINING,
        );
    }
    // Other weights move them.
    let (_, weighted_grads) = cpu.gradients(&x, &y).expect("gradients");
    let moved = (weighted_grads[1].weights.iter())
        .zip(&plain_grads[1].weights)
        .any(|(a, b)| (a - b).abs() > 1e-3);
    assert!(moved, "the weights changed nothing");

    // An epoch's loss is Σ weighted row losses / Σ weights, and evaluation's is the plain mean.
    // One full-batch step: its loss is of the parameters before it.
    let probabilities = cpu.predict(&x).expect("predict");
    let evaluated = cpu.evaluate(&x, &y).expect("evaluate");
    let full_batch = TrainConfig {
        batch_size: None,
        ..config
    };
    let epoch = cpu.train_epoch(&x, &y, None, &full_batch).expect("epoch");
    let (mut total, mut divisor, mut plain_total) = (0.0f64, 0.0f64, 0.0f64);
    let w = [0.5f64, 2.0, 3.0];
    for (p, &label) in probabilities.chunks(3).zip(&y) {
        let label = label as usize;
        for c in 0..3 {
            let q = 0.9 * f64::from(u8::from(c == label)) + 0.1 / 3.0;
            total -= w[c] * q * f64::from(p[c]).ln();
        }
        divisor += w[label];
        plain_total -= f64::from(p[label]).ln();
    }
    assert_close(
        "weighted epoch loss",
        &[epoch.loss],
        &[(total / divisor) as f32],
        TRAINING,
    );
    assert_close(
        "evaluation's plain loss",
        &[evaluated.loss],
        &[(plain_total / rows as f64) as f32],
        TRAINING,
    );

    let Some(gpu) = gpu_backend() else { return };
    let mut cpu = Model::new(network.clone(), Device::Cpu, 5).expect("cpu");
    let mut gpu = Model::with_backend(network, Box::new(gpu), 5).expect("gpu");
    for model in [&mut cpu, &mut gpu] {
        model.set_cross_entropy(&weighted).expect("weights");
    }
    let expected = twenty_steps(&mut cpu, &x, &y, &config);
    let actual = twenty_steps(&mut gpu, &x, &y, &config);
    assert_runs_agree("weighted cross-entropy", &actual, &expected);
    assert!(
        expected.0[19] < expected.0[0],
        "loss did not fall: {:?}",
        expected.0
    );
}
