//! The optimizers follow PyTorch's update rules step for step: the model's parameters after each step are
//! compared with the rule applied on the host (in f64) to the gradients the model reports.

mod common;

use common::{assert_close, gpu_backend, uniform, Tolerance};
use wgtrain::{
    Activation, Backend, Clipping, CpuBackend, LayerParams, Loss, Model, Network, Optimizer,
    TrainConfig,
};

/// f32 device arithmetic against an f64 host rule over a few steps.
const RULE: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-4,
};

fn flatten(layers: &[LayerParams]) -> Vec<f64> {
    layers
        .iter()
        .flat_map(|l| l.weights.iter().chain(&l.bias))
        .map(|&v| f64::from(v))
        .collect()
}

/// PyTorch's rules on a flat parameter vector, written from the `torch.optim` docs; `state` holds the
/// velocity, (m, v), or RMSprop's (square average, momentum buffer, gradient average).
fn reference_step(
    optimizer: Optimizer,
    lr: f64,
    wd: f64,
    t: i32,
    w: &mut [f64],
    g: &[f64],
    state: &mut [Vec<f64>],
) {
    for i in 0..w.len() {
        let coupled = g[i] + wd * w[i];
        match optimizer {
            Optimizer::Sgd => w[i] -= lr * coupled,
            Optimizer::Momentum { momentum } => {
                state[0][i] = f64::from(momentum) * state[0][i] + coupled;
                w[i] -= lr * state[0][i];
            }
            Optimizer::Nesterov { momentum } => {
                let mu = f64::from(momentum);
                state[0][i] = mu * state[0][i] + coupled;
                w[i] -= lr * (coupled + mu * state[0][i]);
            }
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                epsilon,
            } => {
                // AdamW: decay the weight itself, then Adam's step on the raw gradient.
                let decoupled = matches!(optimizer, Optimizer::AdamW { .. });
                let grad = if decoupled { g[i] } else { coupled };
                if decoupled {
                    w[i] *= 1.0 - lr * wd;
                }
                let (b1, b2) = (f64::from(beta1), f64::from(beta2));
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * grad;
                state[1][i] = b2 * state[1][i] + (1.0 - b2) * grad * grad;
                let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
                w[i] -=
                    lr / bc1 * state[0][i] / (state[1][i].sqrt() / bc2.sqrt() + f64::from(epsilon));
            }
            Optimizer::Rmsprop {
                alpha,
                epsilon,
                momentum,
                centered,
            } => {
                let (a, mu) = (f64::from(alpha), f64::from(momentum));
                state[0][i] = a * state[0][i] + (1.0 - a) * coupled * coupled;
                let mut variance = state[0][i];
                if centered {
                    state[2][i] = a * state[2][i] + (1.0 - a) * coupled;
                    variance -= state[2][i] * state[2][i];
                }
                let avg = variance.sqrt() + f64::from(epsilon);
                if mu > 0.0 {
                    state[1][i] = mu * state[1][i] + coupled / avg;
                    w[i] -= lr * state[1][i];
                } else {
                    w[i] -= lr * coupled / avg;
                }
            }
            other => panic!("no reference rule for {other:?}: add its torch.optim formula here"),
        }
    }
}

/// `torch.nn.utils.clip_grad_value_`, then `clip_grad_norm_` over every parameter, in f64.
fn clip(mut g: Vec<f64>, clipping: Clipping) -> Vec<f64> {
    if let Some(v) = clipping.value {
        let v = f64::from(v);
        g.iter_mut().for_each(|x| *x = x.clamp(-v, v));
    }
    if let Some(max_norm) = clipping.norm {
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let coef = (f64::from(max_norm) / (norm + 1e-6)).min(1.0);
        g.iter_mut().for_each(|x| *x *= coef);
    }
    g
}

fn follows_pytorch(backend: Box<dyn Backend>) {
    let network = Network::builder(3)
        .dense(4, Activation::Tanh)
        .dense(2, Activation::Sigmoid)
        .build(Loss::Bce)
        .expect("valid");
    let x = uniform(1, 6 * 3, -1.0, 1.0);
    let y: Vec<f32> = (0..12).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let mut backend = Some(backend);
    let unclipped = [
        (Optimizer::Sgd, 0.1, 0.0),
        (Optimizer::Sgd, 0.1, 0.05),
        (Optimizer::Momentum { momentum: 0.9 }, 0.05, 0.01),
        (Optimizer::ADAM, 0.01, 0.0),
        (
            Optimizer::Adam {
                beta1: 0.8,
                beta2: 0.99,
                epsilon: 1e-6,
            },
            0.02,
            0.1,
        ),
        (Optimizer::Nesterov { momentum: 0.9 }, 0.05, 0.0),
        (Optimizer::Nesterov { momentum: 0.5 }, 0.05, 0.01),
        (Optimizer::ADAMW, 0.01, 0.01),
        (
            Optimizer::AdamW {
                beta1: 0.8,
                beta2: 0.99,
                epsilon: 1e-6,
            },
            0.02,
            0.1,
        ),
        (Optimizer::RMSPROP, 0.01, 0.0),
        (
            Optimizer::Rmsprop {
                alpha: 0.9,
                epsilon: 1e-6,
                momentum: 0.8,
                centered: false,
            },
            0.005,
            0.01,
        ),
        (
            Optimizer::Rmsprop {
                alpha: 0.95,
                epsilon: 1e-8,
                momentum: 0.0,
                centered: true,
            },
            0.005,
            0.0,
        ),
        (
            Optimizer::Rmsprop {
                alpha: 0.99,
                epsilon: 1e-8,
                momentum: 0.9,
                centered: true,
            },
            0.002,
            0.05,
        ),
    ];
    // Gradient norms here are about 0.3: 0.1 clips every step; 0.02 clamps some gradients, not others.
    let clipped = [
        (
            Optimizer::Sgd,
            0.1,
            0.0,
            Clipping {
                norm: Some(0.1),
                value: None,
            },
        ),
        (
            Optimizer::Sgd,
            0.1,
            0.01,
            Clipping {
                norm: None,
                value: Some(0.02),
            },
        ),
        (
            Optimizer::ADAM,
            0.01,
            0.0,
            Clipping {
                norm: Some(0.1),
                value: Some(0.02),
            },
        ),
        (
            Optimizer::ADAMW,
            0.01,
            0.1,
            Clipping {
                norm: Some(0.1),
                value: None,
            },
        ),
        (
            Optimizer::Nesterov { momentum: 0.9 },
            0.05,
            0.0,
            Clipping {
                norm: Some(1e3),
                value: None,
            },
        ),
    ];
    let runs = unclipped
        .into_iter()
        .map(|(o, lr, wd)| (o, lr, wd, Clipping::default()))
        .chain(clipped);
    for (optimizer, lr, wd, clipping) in runs {
        let mut model = Model::with_backend(network.clone(), backend.take().expect("backend"), 2)
            .expect("model");
        let config = TrainConfig {
            learning_rate: lr,
            optimizer,
            weight_decay: wd,
            clipping,
            ..TrainConfig::default()
        };
        let mut w = flatten(&model.parameters().expect("params"));
        let mut state = vec![vec![0.0; w.len()]; 3];
        for t in 1..=4 {
            let (_, grads) = model.gradients(&x, &y).expect("gradients");
            let raw = flatten(&grads);
            if let Some(n) = clipping.norm.filter(|&n| n < 1.0) {
                // The clipping must bite for the comparison to test it.
                let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
                assert!(
                    norm > f64::from(n),
                    "gradient norm {norm} is not clipped at {n}"
                );
            }
            if let Some(v) = clipping.value.map(f64::from) {
                assert!(
                    raw.iter().any(|g| g.abs() > v) && raw.iter().any(|g| g.abs() < v),
                    "clamping at {v} should change some gradients and leave others"
                );
            }
            let g = clip(raw, clipping);
            reference_step(
                optimizer,
                f64::from(lr),
                f64::from(wd),
                t,
                &mut w,
                &g,
                &mut state,
            );
            model.train(&x, &y, &config).expect("step");
            let actual: Vec<f32> = flatten(&model.parameters().expect("params"))
                .iter()
                .map(|&v| v as f32)
                .collect();
            let expected: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let what = format!(
                "{optimizer} lr {lr} wd {wd} {clipping:?} step {t} on {}",
                model.device_info().backend
            );
            assert_close(&what, &actual, &expected, RULE);
            // Carry on from the device's values so rounding differences do not compound.
            w = actual.iter().map(|&v| f64::from(v)).collect();
        }
        backend = Some(model.into_backend());
    }
}

#[test]
fn optimizers_follow_pytorch_on_cpu() {
    follows_pytorch(Box::new(CpuBackend::new()));
}

#[test]
fn optimizers_follow_pytorch_on_gpu() {
    let Some(gpu) = gpu_backend() else { return };
    follows_pytorch(Box::new(gpu));
}

/// Switching optimizers is asked for: after Adam's steps another rule is refused until
/// `reset_optimizer`, and then the new one starts from fresh state (zero moments, step 1), as a new
/// PyTorch optimizer would: Adam's first step moves every parameter by about the learning rate.
#[test]
fn switching_optimizer_resets_its_state() {
    let network = Network::builder(2)
        .dense(1, Activation::Linear)
        .build(Loss::Mse)
        .expect("valid");
    let mut model = Model::new(network, wgtrain::Device::Cpu, 0).expect("model");
    let (x, y) = ([1.0, 2.0, -1.0, 0.5], [1.0, -1.0]);
    let adam = TrainConfig {
        learning_rate: 0.01,
        optimizer: Optimizer::ADAM,
        ..TrainConfig::default()
    };
    model
        .train(
            &x,
            &y,
            &TrainConfig {
                iterations: 5,
                ..adam
            },
        )
        .expect("adam");
    let sgd = TrainConfig {
        optimizer: Optimizer::Sgd,
        ..adam
    };
    let refused = model.train(&x, &y, &sgd).expect_err("a silent switch");
    assert!(refused.to_string().contains("reset_optimizer"), "{refused}");
    model.reset_optimizer();
    model.train(&x, &y, &sgd).expect("sgd");
    let before = flatten(&model.parameters().expect("params"));
    model.train(&x, &y, &adam).expect("adam again");
    let after = flatten(&model.parameters().expect("params"));
    for (b, a) in before.iter().zip(&after) {
        assert!(
            ((b - a).abs() - 0.01).abs() < 1e-4,
            "first Adam step should move by lr: {b} -> {a}"
        );
    }
}

/// Long parameter buffers are updated in ranges on several threads; every element must come out exactly
/// as a plain loop over the same rule makes it.
#[test]
fn cpu_updates_split_between_threads_match_a_plain_loop() {
    use wgtrain::optim::hyper;
    let len = 300_001;
    let grads = uniform(7, len, -1.0, 1.0);
    let start = uniform(8, len, -1.0, 1.0);
    let mut h = vec![0.0f32; hyper::LEN];
    h[hyper::LEARNING_RATE] = 0.05;
    h[hyper::MOMENTUM] = 0.9;
    h[hyper::BETA1] = 0.9;
    h[hyper::BETA2] = 0.999;
    h[hyper::EPSILON] = 1e-8;
    h[hyper::WEIGHT_DECAY] = 0.01;
    h[hyper::STEP] = 1.0;
    h[hyper::BIAS_CORRECTION1] = 0.1;
    h[hyper::BIAS_CORRECTION2] = 0.001;
    let (lr, wd) = (h[hyper::LEARNING_RATE], h[hyper::WEIGHT_DECAY]);

    let mut w = start.clone();
    wgtrain::ops::optim::sgd_update(&mut w, &grads, [], &h);
    let want: Vec<f32> = start
        .iter()
        .zip(&grads)
        .map(|(&w, &g)| w - lr * (g + wd * w))
        .collect();
    assert_eq!(w, want, "sgd");

    let (mut w, mut v) = (start.clone(), vec![0.5f32; len]);
    wgtrain::ops::optim::momentum_update(&mut w, &grads, [&mut v], &h);
    for i in [0, 1, len / 2, len - 1] {
        let v_want = 0.9 * 0.5 + (grads[i] + wd * start[i]);
        assert_eq!(
            (w[i], v[i]),
            (start[i] - lr * v_want, v_want),
            "momentum at {i}"
        );
    }

    let (mut w, mut m, mut v) = (start.clone(), vec![0.0f32; len], vec![0.0f32; len]);
    wgtrain::ops::optim::adam_update(&mut w, &grads, [&mut m, &mut v], &h);
    for i in (0..len).step_by(997).chain([len - 1]) {
        let g = grads[i] + wd * start[i];
        let (m_want, v_want) = ((1.0 - 0.9) * g, (1.0 - 0.999) * g * g);
        let w_want = start[i] - lr / 0.1 * m_want / (v_want.sqrt() / 0.001f32.sqrt() + 1e-8);
        assert_eq!((w[i], m[i], v[i]), (w_want, m_want, v_want), "adam at {i}");
    }
}
