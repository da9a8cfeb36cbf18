//! XOR with a 3 → 4 sigmoid → 1 sigmoid network, SSE loss and full-batch gradient descent, as in the classic
//! tutorial (the third input is a constant 1 that acts as an extra bias). Device: `WGTRAIN_DEVICE`.

use wgtrain::{Activation, Device, Loss, Model, Network, TrainConfig};

const INPUTS: [[f32; 3]; 4] = [
    [0.0, 0.0, 1.0],
    [0.0, 1.0, 1.0],
    [1.0, 0.0, 1.0],
    [1.0, 1.0, 1.0],
];
const TARGETS: [f32; 4] = [0.0, 1.0, 1.0, 0.0];
const ITERATIONS: usize = 2500;
const REPORT_EVERY: usize = 500;
const LEARNING_RATE: f32 = 1.0;
const SEED: u64 = 1;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("wgtrain=info"))
        .init();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> wgtrain::Result<()> {
    let network = Network::builder(3)
        .dense(4, Activation::Sigmoid)
        .dense(1, Activation::Sigmoid)
        .build(Loss::Sse)?;
    let mut model = Model::new(network, Device::from_env()?, SEED)?;
    let x: Vec<f32> = INPUTS.concat();
    let config = TrainConfig {
        iterations: REPORT_EVERY,
        batch_size: None,
        learning_rate: LEARNING_RATE,
        ..TrainConfig::default()
    };
    for _ in 0..ITERATIONS / REPORT_EVERY {
        model.train(&x, &TARGETS, &config)?;
        println!("iteration {:>4} loss={:.6}", model.steps(), model.loss()?);
    }
    let predictions = model.predict(&x)?;
    for ((input, target), prediction) in INPUTS.iter().zip(TARGETS).zip(predictions) {
        let input: Vec<String> = input.iter().map(|v| format!("{v}")).collect();
        println!(
            "x=[{}] y={target} prediction={prediction:.4}",
            input.join(", ")
        );
    }
    Ok(())
}
