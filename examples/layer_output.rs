//! The 3-5-5-5-2 network: parameters per layer and in total, then what each layer outputs for one input
//! vector, first as plain `input · weights + bias` chains (no activations), then with the activations.

use wgtrain::{Activation, Device, Model, Network};

const INPUT: [f32; 3] = [1.0, 0.5, -1.5];
const SEED: u64 = 0;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("wgtrain=info"))
        .init();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn show(title: &str, outputs: &[Vec<f32>]) {
    println!("{title}");
    for (i, output) in outputs.iter().enumerate() {
        let values: Vec<String> = output.iter().map(|v| format!("{v:8.4}")).collect();
        println!("  dense layer {}: [{}]", i + 1, values.join(", "));
    }
}

fn run() -> wgtrain::Result<()> {
    let network = Network::builder(3)
        .dense(5, Activation::Relu)
        .dense(5, Activation::Relu)
        .dense(5, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(wgtrain::Loss::Ce)?;
    for i in network.parametrised_layers() {
        let params = network.params(i);
        let counts: Vec<String> = params
            .iter()
            .map(|p| format!("{} {:?}", p.name, p.torch_shape))
            .collect();
        let total: u128 = params.iter().map(|p| p.len()).sum();
        println!(
            "layer {i} ({}, {} → {}): {} = {total} parameters",
            network.layers()[i],
            network.input_of(i),
            network.shapes()[i],
            counts.join(" + ")
        );
    }
    println!("total parameters: {}", network.parameter_count());
    println!();
    println!("{}", network.summary());
    println!();

    let device = Device::from_env()?;
    let mut model = Model::new(network.clone(), device, SEED)?;
    let parameters = model.parameters()?;
    let mut linear = Model::new(network.without_activations(), device, SEED)?;
    linear.set_parameters(&parameters)?;

    println!("input: {INPUT:?}");
    show(
        "without activations (input · weights + bias):",
        &linear.layer_outputs(&INPUT)?,
    );
    show("with activations:", &model.layer_outputs(&INPUT)?);
    Ok(())
}
