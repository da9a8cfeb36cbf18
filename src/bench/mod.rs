//! Matmul throughput, epoch time on the MNIST subset, kernel times, per-step overhead, memory and cold
//! start, one JSON object per line in the format of the peer scripts in `../shared/peers/`. One code path
//! for the CLI and the example, so their lines agree. Benchmarks report; nothing here asserts a speed.

mod epoch;
mod matmul;
pub mod ranks;

use crate::data::{self, Dataset};
use crate::error::quote;
use crate::ops::ConvAlgorithm;
use crate::{Device, Error, Loss, Model, Network, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

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
const CNN_BATCH: usize = 64;
const LEARNING_RATE: f32 = 0.1;
/// Pixels of one image: every workload starts from 28×28 MNIST digits.
const PIXELS: usize = 28 * 28;
/// The images `--quick` epochs run over (the first ones of the file).
pub const QUICK_SAMPLES: usize = 2000;

/// How much each measurement takes.
#[derive(Clone, Copy, Debug)]
struct Effort {
    /// How many of [`MATMUL_SHAPES`] run (and whether 4096³ may be added).
    matmul_shapes: usize,
    /// Least time spent on each matmul measurement.
    matmul_seconds: f64,
    /// Timed epochs after one warm-up epoch; the median is reported.
    epoch_runs: usize,
    /// Steps profiled kernel by kernel; each kernel's median is printed.
    profile_runs: usize,
    /// Images each epoch runs over; `None` is the whole file.
    samples: Option<usize>,
}

const FULL: Effort = Effort {
    matmul_shapes: MATMUL_SHAPES.len(),
    matmul_seconds: 0.3,
    epoch_runs: 3,
    profile_runs: 7,
    samples: None,
};

/// `--quick`: the smaller products timed briefly, epochs over the first images, fewer profiled steps.
const QUICK: Effort = Effort {
    matmul_shapes: 3,
    matmul_seconds: 0.05,
    epoch_runs: 3,
    profile_runs: 3,
    samples: Some(QUICK_SAMPLES),
};

/// Which lines run: `mlp` (matmuls and MLP epochs), `cnn` (the CNN epoch) or `all`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Workload {
    #[default]
    All,
    Mlp,
    Cnn,
}

impl FromStr for Workload {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(Workload::All),
            "mlp" => Ok(Workload::Mlp),
            "cnn" => Ok(Workload::Cnn),
            other => Err(Error::value(
                "--workload",
                format!("{}, expected one of mlp, cnn, all", quote(other)),
            )),
        }
    }
}

/// `--conv`: which conv algorithms the CNN lines run with, one set of lines each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvChoice {
    Im2col,
    Direct,
    Both,
}

impl ConvChoice {
    /// The algorithms of a choice; no choice is the device's own (`None`).
    pub fn algorithms(choice: Option<ConvChoice>) -> Vec<Option<ConvAlgorithm>> {
        match choice {
            None => vec![None],
            Some(ConvChoice::Im2col) => vec![Some(ConvAlgorithm::PatchMatrix)],
            Some(ConvChoice::Direct) => vec![Some(ConvAlgorithm::Direct)],
            Some(ConvChoice::Both) => vec![
                Some(ConvAlgorithm::PatchMatrix),
                Some(ConvAlgorithm::Direct),
            ],
        }
    }
}

impl FromStr for ConvChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "im2col" => Ok(ConvChoice::Im2col),
            "direct" => Ok(ConvChoice::Direct),
            "both" => Ok(ConvChoice::Both),
            other => Err(Error::value(
                "--conv",
                format!("{}, expected one of im2col, direct, both", quote(other)),
            )),
        }
    }
}

/// How to start this program again for the cold-start line: `program args… --cold-start --device D`
/// must print that one line (see [`cold_start_line`]).
#[derive(Clone, Debug)]
pub struct Rerun {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// What to bench.
#[derive(Clone, Debug)]
pub struct Options {
    /// Benched in turn.
    pub devices: Vec<Device>,
    /// Skip a device that cannot be opened, with a note on stderr, instead of failing.
    pub skip_absent: bool,
    pub workload: Workload,
    /// The CNN's lines run once for each; `None` is the device's own choice.
    pub convs: Vec<Option<ConvAlgorithm>>,
    /// Shorter, smaller measurements (see [`QUICK_SAMPLES`] and the CLI's `--help`).
    pub quick: bool,
    /// The MNIST IDX images file (its labels file beside it).
    pub data: PathBuf,
    /// `None` leaves out the cold-start line.
    pub rerun: Option<Rerun>,
}

/// One epoch line, for a readable summary.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochSummary {
    /// The device as the lines name it (`cpu`, `fallback`, `gpu`, `gpu:N`, `auto`).
    pub device: String,
    pub adapter: String,
    /// `784-128-10`, or the CNN's label.
    pub layers: String,
    /// How the conv layers ran; `None` for an MLP.
    pub conv: Option<String>,
    pub batch: usize,
    pub samples: usize,
    pub median_ms: f64,
    /// Effective GFLOP/s: three times the forward pass's multiply-adds, ×2, per sample.
    pub gflops: f64,
}

/// The per-device state the line writers share.
struct Bench<'a> {
    device: String,
    /// JSON-quoted, as the lines carry it.
    adapter: String,
    adapter_name: String,
    effort: Effort,
    emit: &'a mut dyn FnMut(&str) -> Result<()>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".into())
}

/// A note on stderr; a stderr that cannot be written is no reason to stop a bench.
fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The MNIST images and labels, checked to be what the workloads take (28×28, a full batch or more), cut
/// to the first `samples` images.
fn load(path: &Path, samples: Option<usize>) -> Result<Dataset> {
    let mut mnist = data::load_idx(path, None)?;
    let rows = mnist.rows();
    let least = EPOCH_CONFIGS.iter().map(|c| c.1).max().unwrap_or(1);
    if rows < least || mnist.features.len() != rows * PIXELS {
        return Err(Error::format(
            path,
            format!(
                "the bench needs at least {least} images of 28x28 pixels, got {rows} of {}",
                mnist.features.len().checked_div(rows).unwrap_or(0)
            ),
        ));
    }
    if let Some(samples) = samples {
        let rows = rows.min(samples.max(least));
        mnist.features.truncate(rows * PIXELS);
        mnist.targets.truncate(rows);
    }
    Ok(mnist)
}

/// Every device's lines, each through `emit` without its newline; returns one summary per epoch line.
pub fn run(
    options: &Options,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<Vec<EpochSummary>> {
    let effort = if options.quick { QUICK } else { FULL };
    let mnist = load(&options.data, effort.samples)?;
    let mut summaries = Vec::new();
    for &device in &options.devices {
        let backend = match device.open() {
            Ok(backend) => backend,
            Err(e) if options.skip_absent => {
                note(&format!("skipping {device}: {e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let info = backend.info().clone();
        let mut bench = Bench {
            device: device.name(),
            adapter: json_str(&info.adapter),
            adapter_name: info.adapter.clone(),
            effort,
            emit: &mut *emit,
        };
        // What the figures below were measured on: the adapter (the CPU's model on the CPU backend), its
        // driver (the SIMD extensions sgemm can use there) and the API.
        (bench.emit)(&format!(
            "{{\"kind\":\"device\",\"device\":\"{}\",\"adapter\":{},\"driver\":{},\"api\":{},\"type\":{}}}",
            bench.device,
            bench.adapter,
            json_str(&info.driver),
            json_str(&info.api),
            json_str(&info.device_type)
        ))?;
        summaries.extend(bench.device_lines(backend, &mnist, options)?);
        if let Some(rerun) = &options.rerun {
            bench.cold_start_child(device, rerun)?;
        }
    }
    Ok(summaries)
}

impl Bench<'_> {
    /// The matmul and epoch lines of one device.
    fn device_lines(
        &mut self,
        mut backend: Box<dyn crate::Backend>,
        mnist: &Dataset,
        options: &Options,
    ) -> Result<Vec<EpochSummary>> {
        let (mlp, cnn) = (
            options.workload != Workload::Cnn,
            options.workload != Workload::Mlp,
        );
        let device_type = backend.info().device_type.clone();
        let hardware = device_type == "discrete" || device_type == "integrated";
        let mut shapes = MATMUL_SHAPES[..self.effort.matmul_shapes].to_vec();
        if hardware && self.effort.matmul_shapes == MATMUL_SHAPES.len() {
            shapes.push((4096, 4096, 4096));
        }
        let (device, adapter) = (self.device.clone(), self.adapter.clone());
        for &(m, n, k) in shapes.iter().filter(|_| mlp) {
            for form in ["nn", "nt", "tn"] {
                let (gflops, variant) = matmul::matmul_gflops(
                    backend.as_mut(),
                    form,
                    (m, n, k),
                    self.effort.matmul_seconds,
                )?;
                // The workgroup shape the backend chose for this product, where it chose one.
                let kernel = variant.map_or(String::new(), |v| format!(",\"workgroup\":\"{v}\""));
                (self.emit)(&format!("{{\"kind\":\"matmul\",\"device\":\"{device}\",\"adapter\":{adapter},\"m\":{m},\"n\":{n},\"k\":{k},\"form\":\"{form}\"{kernel},\"gflops\":{gflops:.3}}}"))?;
            }
        }
        let mut summaries = Vec::new();
        for (widths, batch) in EPOCH_CONFIGS.into_iter().filter(|_| mlp) {
            let label = widths
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("-");
            let work = epoch::Workload {
                net: epoch::network(widths)?,
                layers: &label,
                batch,
                conv: None,
            };
            let summary;
            (backend, summary) = self.epoch_lines(backend, mnist, work)?;
            summaries.push(summary);
        }
        if cnn {
            let image = crate::Shape::Image {
                channels: 1,
                height: 28,
                width: 28,
            };
            let net = Network::builder_for(image)
                .spec(CNN_SPEC)?
                .build(Loss::Ce)?;
            for &conv in &options.convs {
                let work = epoch::Workload {
                    net: net.clone(),
                    layers: CNN_LABEL,
                    batch: CNN_BATCH,
                    conv,
                };
                let summary;
                (backend, summary) = self.epoch_lines(backend, mnist, work)?;
                summaries.push(summary);
            }
        }
        Ok(summaries)
    }

    /// Runs the cold-start child and passes its line on; a child that fails is noted, not fatal.
    fn cold_start_child(&mut self, device: Device, rerun: &Rerun) -> Result<()> {
        let output = std::process::Command::new(&rerun.program)
            .args(&rerun.args)
            .args(["--cold-start", "--device", &device.name()])
            .stdin(std::process::Stdio::null())
            .output();
        match output {
            Ok(out) => {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    (self.emit)(line)?;
                }
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let why = err.lines().last().unwrap_or("no message");
                    note(&format!("cold start on {device}: {}: {why}", out.status));
                }
            }
            Err(e) => note(&format!("cold start on {device}: {e}")),
        }
        Ok(())
    }
}

/// Process start (`started`) to the first training step finished on `device`: device, pipelines, data
/// load and upload included.
pub fn cold_start(device: Device, data: &Path, started: Instant) -> Result<f64> {
    let backend = device.open()?;
    let mnist = load(data, None)?;
    let (widths, batch) = EPOCH_CONFIGS[0];
    let mut model = Model::with_backend(epoch::network(widths)?, backend, 0)?;
    model.train_step(
        &mnist.features[..batch * widths[0]],
        &mnist.targets[..batch],
        &crate::TrainConfig {
            learning_rate: LEARNING_RATE,
            ..crate::TrainConfig::default()
        },
    )?;
    model.loss()?;
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// The cold-start line of [`cold_start`]'s time.
pub fn cold_start_line(device: Device, ms: f64) -> String {
    format!("{{\"kind\":\"cold_start\",\"device\":\"{device}\",\"ms\":{ms:.1}}}")
}
