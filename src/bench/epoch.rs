//! The epoch, kernels, overhead and memory lines of one network on one device.

use super::{Bench, EpochSummary, LEARNING_RATE};
use crate::data::Dataset;
use crate::ops::ConvAlgorithm;
use crate::{
    Activation, Backend, Error, Loss, Model, Network, Optimizer, Result, Shape, TrainConfig,
};
use std::time::Instant;

/// An MLP of these widths: ReLU hidden layers, softmax output, cross-entropy.
pub(super) fn network(widths: &[usize]) -> Result<Network> {
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
                Shape::Image { height, width, .. } => weights * (height * width) as u128,
                Shape::Sequence { positions, .. } => weights * positions as u128,
                _ => weights,
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

/// The network under test, labelled as its lines name it.
pub(super) struct Workload<'a> {
    pub net: Network,
    pub layers: &'a str,
    pub batch: usize,
    /// How its conv layers run; `None` leaves the device's choice.
    pub conv: Option<ConvAlgorithm>,
}

impl Bench<'_> {
    /// Epoch, kernels, overhead and memory lines for one workload; hands the backend back with what the
    /// summary needs.
    pub(super) fn epoch_lines(
        &mut self,
        backend: Box<dyn Backend>,
        mnist: &Dataset,
        work: Workload,
    ) -> Result<(Box<dyn Backend>, EpochSummary)> {
        let Workload {
            net,
            layers,
            batch,
            conv,
        } = work;
        let (device, adapter) = (self.device.as_str(), self.adapter.as_str());
        // GPU backends get the training set held on the device below; the CPU backend reads host memory.
        let on_host = backend.info().backend == "cpu";
        let mut model = Model::with_backend(net.clone(), backend, 0)?;
        if let Some(conv) = conv {
            model.set_conv_algorithm(conv)?;
        }
        // Image networks name how their conv layers ran.
        let conv_name = match net.input_shape() {
            Shape::Image { .. } => Some(model.conv_algorithm().name()),
            _ => None,
        };
        let conv_field = conv_name.map_or(String::new(), |c| format!(",\"conv\":\"{c}\""));
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
        let held = !on_host && model.hold_training_set(x, y)?;
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
        for _ in 0..self.effort.epoch_runs {
            let before = model.counters();
            let start = Instant::now();
            let stats = epoch(&mut model)?;
            runs.push(start.elapsed().as_secs_f64() * 1e3);
            last = model.counters();
            per_epoch = crate::Counters {
                submits: last.submits - before.submits,
                readbacks: last.readbacks - before.readbacks,
                allocations: last.allocations - before.allocations,
                live_bytes: last.live_bytes,
            };
            if !stats.loss.is_finite() {
                return Err(Error::Diverged(format!("bench loss {}", stats.loss)));
            }
        }
        // GPU (or host) time of each kernel in one step, where the device can tell.
        let first_batch = (&x[..batch * net.inputs()], &y[..batch]);
        let mut profiles = Vec::new();
        for _ in 0..self.effort.profile_runs {
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
            (self.emit)(&format!(
                "{{\"kind\":\"kernels\",\"device\":\"{device}\",\"layers\":\"{layers}\"{conv_field},\"batch\":{batch},\"step_us\":{total:.1},\"kernels\":[{}]}}",
                items.join(",")
            ))?;
        }
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let runs_ms: Vec<String> = runs.iter().map(|r| format!("{r:.2}")).collect();
        let samples = mnist.rows();
        // Multiply-adds of one sample's forward pass (products only); a training step is about three times it.
        let forward_flops = 2.0 * forward_macs(&net) as f64;
        let gflops = 3.0 * forward_flops * samples as f64 / (median / 1e3) / 1e9;
        (self.emit)(&format!("{{\"kind\":\"epoch\",\"device\":\"{device}\",\"adapter\":{adapter},\"layers\":\"{layers}\"{conv_field},\"batch\":{batch},\"samples\":{samples},\"median_ms\":{median:.2},\"gflops\":{gflops:.2},\"runs_ms\":[{}]}}", runs_ms.join(",")))?;
        let steps = samples.div_ceil(batch) as f64;
        let allocations_after_first_step = last.allocations - after_first_step.allocations;
        (self.emit)(&format!(
            "{{\"kind\":\"overhead\",\"device\":\"{device}\",\"layers\":\"{layers}\"{conv_field},\"submits_per_step\":{:.3},\"readbacks_per_epoch\":{},\"allocations_after_first_step\":{allocations_after_first_step},\"allocations_until_first_step\":{}}}",
            per_epoch.submits as f64 / steps,
            per_epoch.readbacks,
            after_first_step.allocations - before_training.allocations,
        ))?;
        // What a step must hold on the device: parameters and their gradients (SGD keeps no state), one
        // batch of activations and of their gradients, the batch's inputs and targets, and, when the
        // training set is held on the device, the set itself as it is stored (f32 features and targets).
        let params = net.parameter_count() as usize;
        let activations: usize = (0..net.layers().len())
            .filter(|&i| !net.layers()[i].kind().in_place())
            .map(|i| net.shapes()[i].len() as usize)
            .sum::<usize>()
            * batch;
        let dataset = if held { x.len() + y.len() } else { 0 };
        let minimum_bytes =
            4 * (2 * params + 2 * activations + batch * net.inputs() + batch + dataset);
        (self.emit)(&format!(
            "{{\"kind\":\"memory\",\"device\":\"{device}\",\"layers\":\"{layers}\"{conv_field},\"gpu_bytes\":{},\"minimum_bytes\":{minimum_bytes},\"dataset_on_device\":{held},\"host_peak_rss_mb\":{:.1}}}",
            last.live_bytes,
            peak_rss_mb()
        ))?;
        let summary = EpochSummary {
            device: self.device.clone(),
            adapter: self.adapter_name.clone(),
            layers: layers.to_string(),
            conv: conv_name.map(str::to_string),
            batch,
            samples,
            median_ms: median,
            gflops,
        };
        Ok((model.into_backend(), summary))
    }
}
