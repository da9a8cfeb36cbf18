//! The benchmark: matmul throughput, epoch time on the MNIST subset, cold start, per-step overhead and
//! memory, on every device it can get (or `--device cpu|fallback|gpu`), one JSON object per line, in the
//! format of the peer scripts in `../shared/peers/`. `cargo run --release --example bench [-- --device D]`.
//! Benchmarks report; nothing here asserts a speed.

use std::path::Path;
use std::time::Instant;
use wgtrain::backend::{Backend, BufferId, Op};
use wgtrain::data;
use wgtrain::ops::{ConvAlgorithm, MatmulBiasAct, MatmulNt, MatmulTn};
use wgtrain::{
    Activation, CpuBackend, Device, Loss, Model, Network, Optimizer, TrainConfig, WgpuBackend,
};

/// (m, n, k) of the matmul lines; 4096³ is added on hardware GPUs.
const MATMUL_SHAPES: [(usize, usize, usize); 4] = [
    (64, 128, 784),
    (128, 256, 784),
    (256, 256, 256),
    (1024, 1024, 1024),
];
/// Layer widths and batch size of the MLP epoch lines (the peers' workload).
const EPOCH_CONFIGS: [(&[usize], usize); 2] = [(&[784, 128, 10], 64), (&[784, 256, 256, 10], 128)];
/// The CNN epoch line: `../shared/peers/torch_cnn.py`'s network, batch 64, SGD lr 0.1, file order.
const CNN_SPEC: &str =
    "conv:16:3:pad=1,relu,maxpool:2,conv:32:3:pad=1,relu,maxpool:2,flatten,dense:10,softmax";
const CNN_LABEL: &str = "cnn-16c3-p2-32c3-p2-10";
const LEARNING_RATE: f32 = 0.1;
/// Timed epochs after one warm-up epoch; the median is reported.
const EPOCH_RUNS: usize = 3;
/// Steps profiled kernel by kernel; each kernel's median is printed.
const PROFILE_RUNS: usize = 7;
/// Least time spent on each matmul measurement.
const MATMUL_SECONDS: f64 = 0.3;

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device_arg = args
        .iter()
        .position(|a| a == "--device")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if args.iter().any(|a| a == "--cold-start") {
        let device = device_arg.as_deref().unwrap_or("cpu");
        match cold_start(device, started) {
            Ok(ms) => {
                println!("{{\"kind\":\"cold_start\",\"device\":\"{device}\",\"ms\":{ms:.1}}}")
            }
            Err(e) => eprintln!("error: cold start on {device}: {e}"),
        }
        return;
    }
    let workload = args
        .iter()
        .position(|a| a == "--workload")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "all".into());
    // How the CNN's conv layers run: the device's own choice, or `--conv im2col|direct|both`.
    let convs: Vec<Option<ConvAlgorithm>> = match args
        .iter()
        .position(|a| a == "--conv")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
    {
        None => vec![None],
        Some("im2col") => vec![Some(ConvAlgorithm::PatchMatrix)],
        Some("direct") => vec![Some(ConvAlgorithm::Direct)],
        Some("both") => vec![
            Some(ConvAlgorithm::PatchMatrix),
            Some(ConvAlgorithm::Direct),
        ],
        Some(other) => {
            eprintln!("error: --conv takes im2col, direct or both, got {other:?}");
            std::process::exit(2);
        }
    };
    let devices: Vec<String> = match device_arg {
        Some(d) => vec![d],
        None => ["cpu", "fallback", "gpu"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    for device in devices {
        if let Err(e) = bench_device(&device, &workload, &convs) {
            eprintln!("skipping {device}: {e}");
        }
    }
}

fn open(device: &str) -> wgtrain::Result<Box<dyn Backend>> {
    Ok(match device {
        "cpu" => Box::new(CpuBackend::new()),
        "fallback" => Box::new(WgpuBackend::new(wgtrain::gpu::fallback_adapter()?)?),
        "gpu" => Box::new(WgpuBackend::new(wgtrain::gpu::hardware_adapter()?)?),
        other => {
            return Err(other
                .parse::<Device>()
                .err()
                .unwrap_or(wgtrain::Error::NoAdapter(other.into())))
        }
    })
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".into())
}

/// Every line for one device; `workload` is `all`, `mlp` (matmuls and MLP epochs) or `cnn`, whose lines
/// run once for each of `convs`.
fn bench_device(
    device: &str,
    workload: &str,
    convs: &[Option<ConvAlgorithm>],
) -> wgtrain::Result<()> {
    let mut backend = open(device)?;
    let adapter = json_str(&backend.info().adapter);
    // What the figures below were measured on: the adapter (the CPU's model on the CPU backend), its
    // driver (the SIMD extensions sgemm can use there) and the API.
    let info = backend.info();
    println!(
        "{{\"kind\":\"device\",\"device\":\"{device}\",\"adapter\":{adapter},\"driver\":{},\"api\":{},\"type\":{}}}",
        json_str(&info.driver),
        json_str(&info.api),
        json_str(&info.device_type)
    );
    let hardware =
        backend.info().device_type == "discrete" || backend.info().device_type == "integrated";
    let mut shapes = MATMUL_SHAPES.to_vec();
    if hardware {
        shapes.push((4096, 4096, 4096));
    }
    let (mlp, cnn) = (workload != "cnn", workload != "mlp");
    for &(m, n, k) in shapes.iter().filter(|_| mlp) {
        for form in ["nn", "nt", "tn"] {
            let (gflops, variant) = matmul_gflops(backend.as_mut(), form, m, n, k)?;
            // The workgroup shape the backend chose for this product, where it chose one.
            let kernel = variant.map_or(String::new(), |v| format!(",\"workgroup\":\"{v}\""));
            println!("{{\"kind\":\"matmul\",\"device\":\"{device}\",\"adapter\":{adapter},\"m\":{m},\"n\":{n},\"k\":{k},\"form\":\"{form}\"{kernel},\"gflops\":{gflops:.3}}}");
        }
    }
    let mnist = data::load_idx(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k-train-images-idx3-ubyte.gz"),
        None,
    )?;
    for (widths, batch) in EPOCH_CONFIGS.into_iter().filter(|_| mlp) {
        let label = widths
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("-");
        backend = epoch_lines(
            backend,
            device,
            &adapter,
            &mnist,
            network(widths)?,
            &label,
            batch,
            None,
        )?;
    }
    if cnn {
        let image = wgtrain::Shape::Image {
            channels: 1,
            height: 28,
            width: 28,
        };
        let net = Network::builder_for(image)
            .spec(CNN_SPEC)?
            .build(Loss::Ce)?;
        for &conv in convs {
            backend = epoch_lines(
                backend,
                device,
                &adapter,
                &mnist,
                net.clone(),
                CNN_LABEL,
                64,
                conv,
            )?;
        }
    }
    let exe = std::env::current_exe().map_err(|e| wgtrain::Error::File {
        path: "bench".into(),
        message: e.to_string(),
    })?;
    let output = std::process::Command::new(exe)
        .args(["--cold-start", "--device", device])
        .output();
    match output {
        Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Err(e) => eprintln!("cold start: {e}"),
    }
    Ok(())
}

/// The op of one form with C = [m, n] and inner dimension k.
fn matmul_op(form: &str, b: &[BufferId], m: usize, n: usize, k: usize) -> Op {
    match form {
        "nn" => Op::MatmulBiasAct(MatmulBiasAct {
            input: b[0].region(m * k),
            weights: b[1].region(k * n),
            bias: b[3].region(n),
            output: b[2].region(m * n),
            m,
            k,
            n,
            activation: Activation::Linear,
            workgroup: None,
        }),
        "nt" => Op::MatmulNt(MatmulNt {
            grad_output: b[0].region(m * k),
            weights: b[1].region(n * k),
            grad_input: b[2].region(m * n),
            m,
            k,
            n,
            workgroup: None,
        }),
        _ => Op::MatmulTn(MatmulTn {
            input: b[0].region(k * m),
            grad_output: b[1].region(k * n),
            grad_weights: b[2].region(m * n),
            m,
            k,
            n,
            workgroup: None,
        }),
    }
}

/// 2·m·n·k per product over the time of `reps` products in one submission (the read after it waits), and
/// the variant the backend runs it in.
fn matmul_gflops(
    backend: &mut dyn Backend,
    form: &str,
    m: usize,
    n: usize,
    k: usize,
) -> wgtrain::Result<(f64, Option<String>)> {
    let sizes = [m * k, k * n, m * n, n];
    let buffers: Vec<BufferId> = sizes
        .iter()
        .map(|&len| backend.alloc("bench operand", len))
        .collect::<wgtrain::Result<_>>()?;
    for (&buffer, &len) in buffers.iter().zip(&sizes) {
        backend.write(buffer, 0, &vec![0.5; len])?;
    }
    let kernel = backend.prepare(&matmul_op(form, &buffers, m, n, k))?;
    let mut time = |reps: usize| -> wgtrain::Result<f64> {
        let start = Instant::now();
        for _ in 0..reps {
            backend.enqueue(kernel)?;
        }
        backend.submit()?;
        backend.read(buffers[2].region(1))?;
        Ok(start.elapsed().as_secs_f64())
    };
    let once = time(1)?.max(1e-6);
    let reps = ((MATMUL_SECONDS / once).ceil() as usize).clamp(1, 1000);
    let seconds = time(reps)?;
    for buffer in buffers {
        backend.free(buffer)?;
    }
    let variant = backend.kernel_variant(kernel);
    Ok((
        2.0 * (m * n * k) as f64 * reps as f64 / seconds / 1e9,
        variant,
    ))
}

fn network(widths: &[usize]) -> wgtrain::Result<Network> {
    let mut builder = Network::builder(widths[0]);
    for &w in &widths[1..widths.len() - 1] {
        builder = builder.dense(w, Activation::Relu);
    }
    builder
        .dense(widths[widths.len() - 1], Activation::Softmax)
        .build(Loss::Ce)
}

/// Multiply-adds of one sample's forward pass through the dense and conv layers.
fn forward_macs(net: &Network) -> u128 {
    (0..net.layers().len())
        .map(|i| {
            let weights: u128 = net.params(i).first().map_or(0, |w| w.len());
            match net.shapes()[i] {
                wgtrain::Shape::Image { height, width, .. } => weights * (height * width) as u128,
                wgtrain::Shape::Flat(_) => weights,
            }
        })
        .sum()
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Epoch, overhead and memory lines for one shape, its conv layers run `conv`'s way (else the device's);
/// hands the backend back.
#[allow(clippy::too_many_arguments)]
fn epoch_lines(
    backend: Box<dyn Backend>,
    device: &str,
    adapter: &str,
    mnist: &data::Dataset,
    net: Network,
    layers: &str,
    batch: usize,
    conv: Option<ConvAlgorithm>,
) -> wgtrain::Result<Box<dyn Backend>> {
    let mut model = Model::with_backend(net.clone(), backend, 0)?;
    if let Some(conv) = conv {
        model.set_conv_algorithm(conv)?;
    }
    // Image networks name how their conv layers ran.
    let conv_field = match net.input_shape() {
        wgtrain::Shape::Image { .. } => {
            format!(",\"conv\":\"{}\"", model.conv_algorithm().name())
        }
        wgtrain::Shape::Flat(_) => String::new(),
    };
    let config = TrainConfig {
        batch_size: Some(batch),
        learning_rate: LEARNING_RATE,
        optimizer: Optimizer::Sgd,
        ..TrainConfig::default()
    };
    let (x, y) = (&mnist.features, &mnist.targets);
    let before_training = model.counters();
    // On a GPU the training set is held on the device, as `fit` does: batches are gathered there and
    // several steps share a submission. The CPU backend reads batches from host memory directly.
    let held = device != "cpu" && model.hold_training_set(x, y)?;
    let epoch = |model: &mut Model| {
        if held {
            model.train_epoch_held(None, &config)
        } else {
            model.train_epoch(x, y, None, &config)
        }
    };
    epoch(&mut model)?; // warm-up
    let after_first_step = model
        .counters_after_first_step()
        .expect("the warm-up epoch took steps");
    let mut runs = Vec::new();
    let mut last = model.counters();
    let mut per_epoch = last;
    for _ in 0..EPOCH_RUNS {
        let before = model.counters();
        let start = Instant::now();
        let stats = epoch(&mut model)?;
        runs.push(start.elapsed().as_secs_f64() * 1e3);
        last = model.counters();
        per_epoch = wgtrain::Counters {
            submits: last.submits - before.submits,
            readbacks: last.readbacks - before.readbacks,
            allocations: last.allocations - before.allocations,
            live_bytes: last.live_bytes,
        };
        if !stats.loss.is_finite() {
            return Err(wgtrain::Error::Diverged(format!(
                "bench loss {}",
                stats.loss
            )));
        }
    }
    // GPU (or host) time of each kernel in one step, where the device can tell.
    let first_batch = (&x[..batch * net.inputs()], &y[..batch]);
    let mut profiles = Vec::new();
    for _ in 0..PROFILE_RUNS {
        profiles.extend(model.profile_step(first_batch.0, first_batch.1, &config)?);
    }
    if let Some(first) = profiles.first() {
        // Each kernel's median over the profiled steps.
        let kernels: Vec<(&str, f64)> = (0..first.len())
            .map(|i| {
                let mut times: Vec<f64> = profiles.iter().map(|p| p[i].1).collect();
                times.sort_by(f64::total_cmp);
                (first[i].0, times[times.len() / 2])
            })
            .collect();
        let total: f64 = kernels.iter().map(|(_, us)| us).sum();
        let items: Vec<String> = kernels
            .iter()
            .map(|(op, us)| format!("{{\"op\":\"{op}\",\"us\":{us:.1}}}"))
            .collect();
        println!(
            "{{\"kind\":\"kernels\",\"device\":\"{device}\",\"layers\":\"{layers}\"{conv_field},\"batch\":{batch},\"step_us\":{total:.1},\"kernels\":[{}]}}",
            items.join(",")
        );
    }
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let runs_ms: Vec<String> = runs.iter().map(|r| format!("{r:.2}")).collect();
    let samples = mnist.rows();
    // Multiply-adds of one sample's forward pass (products only); a training step is about three times it.
    let forward_flops = 2.0 * forward_macs(&net) as f64;
    let gflops = 3.0 * forward_flops * samples as f64 / (median / 1e3) / 1e9;
    println!("{{\"kind\":\"epoch\",\"device\":\"{device}\",\"adapter\":{adapter},\"layers\":\"{layers}\"{conv_field},\"batch\":{batch},\"samples\":{samples},\"median_ms\":{median:.2},\"gflops\":{gflops:.2},\"runs_ms\":[{}]}}", runs_ms.join(","));
    let steps = samples.div_ceil(batch) as f64;
    let allocations_after_first_step = last.allocations - after_first_step.allocations;
    println!(
        "{{\"kind\":\"overhead\",\"device\":\"{device}\",\"layers\":\"{layers}\"{conv_field},\"submits_per_step\":{:.3},\"readbacks_per_epoch\":{},\"allocations_after_first_step\":{allocations_after_first_step},\"allocations_until_first_step\":{}}}",
        per_epoch.submits as f64 / steps,
        per_epoch.readbacks,
        after_first_step.allocations - before_training.allocations,
    );
    // What a step must hold on the device: parameters and their gradients (SGD keeps no state), one batch of
    // activations and of their gradients, the batch's inputs and targets, and, when the training set is
    // held on the device, the set itself as it is stored (f32 features and targets).
    let params = net.parameter_count() as usize;
    let activations: usize = (0..net.layers().len())
        .filter(|&i| !net.layers()[i].kind().in_place())
        .map(|i| net.shapes()[i].len() as usize)
        .sum::<usize>()
        * batch;
    let dataset = if held { x.len() + y.len() } else { 0 };
    let minimum_bytes = 4 * (2 * params + 2 * activations + batch * net.inputs() + batch + dataset);
    println!(
        "{{\"kind\":\"memory\",\"device\":\"{device}\",\"layers\":\"{layers}\"{conv_field},\"gpu_bytes\":{},\"minimum_bytes\":{minimum_bytes},\"dataset_on_device\":{held},\"host_peak_rss_mb\":{:.1}}}",
        last.live_bytes,
        peak_rss_mb()
    );
    Ok(model.into_backend())
}

/// Process start to the first training step finished: device, pipelines, data load and upload included.
fn cold_start(device: &str, started: Instant) -> wgtrain::Result<f64> {
    let backend = open(device)?;
    let mnist = data::load_idx(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k-train-images-idx3-ubyte.gz"),
        None,
    )?;
    let (widths, batch) = EPOCH_CONFIGS[0];
    let mut model = Model::with_backend(network(widths)?, backend, 0)?;
    model.train_step(
        &mnist.features[..batch * widths[0]],
        &mnist.targets[..batch],
        LEARNING_RATE,
    )?;
    model.loss()?;
    Ok(started.elapsed().as_secs_f64() * 1e3)
}
