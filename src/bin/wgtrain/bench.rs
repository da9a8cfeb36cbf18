//! `wgtrain bench`: the library's benchmark (`wgtrain::bench`, also `examples/bench.rs`) as JSON lines on
//! stdout, then a readable summary whose lines start with `# ` so a reader of the JSON can skip them.

use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;
use wgtrain::bench::{self, ConvChoice, EpochSummary, Options, Rerun, Workload};
use wgtrain::{Device, Result};

/// The bundled MNIST subset, the images every workload trains on.
const MNIST: &str = "data/mnist10k-train-images-idx3-ubyte.gz";

#[derive(Args, Clone, Debug)]
#[command(after_help = "\
Each line on stdout is one JSON object (kinds: device, matmul, epoch, kernels, overhead, memory, \
cold_start), the same lines as `cargo run --release --example bench`; a summary follows, its lines \
starting with `# `.")]
pub struct BenchArgs {
    /// auto, gpu, gpu:N, fallback, cpu, vulkan, metal, dx12, gl, or part of an adapter name [default:
    /// cpu, fallback and gpu in turn, skipping any this machine lacks; $WGTRAIN_DEVICE is not read]
    #[arg(long, value_parser = crate::parse::<Device>)]
    pub device: Option<Device>,
    /// mlp (matmuls and the two MLP epochs), cnn (the CNN epoch) or all
    #[arg(long, default_value = "all", value_parser = crate::parse::<Workload>)]
    pub workload: Workload,
    /// How the CNN's conv layers run: im2col, direct, or both (one set of lines each) [default: the
    /// device's own choice]
    #[arg(long, value_parser = crate::parse::<ConvChoice>)]
    pub conv: Option<ConvChoice>,
    /// A short run, seconds on the CPU backend: the three smaller matmul shapes for 0.05 s each (not
    /// 1024³, nor 4096³ on a GPU, for 0.3 s), epochs over the first 2000 images (not the whole file), 3
    /// profiled steps (not 7)
    #[arg(long)]
    pub quick: bool,
    /// The MNIST IDX images file, its labels file beside it [default:
    /// data/mnist10k-train-images-idx3-ubyte.gz here, else in the source checkout]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// As one rank of an MPI job (`mpirun -np N wgtrain bench --distributed`; built with the `mpi`
    /// feature): the allreduce of a step's gradients at each network's size and of 16 MiB, and the MLP
    /// epochs trained data-parallel at this many ranks (rank 0 prints)
    #[arg(long, conflicts_with_all = ["workload", "conv", "cold_start"])]
    pub distributed: bool,
    /// Print only the cold-start line: process start to the first training step done (the bench runs
    /// itself again with this for each device)
    #[arg(long, hide = true)]
    pub cold_start: bool,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| crate::job::bundled(MNIST));
    let mut emit = |line: &str| say!("{line}");
    if args.distributed {
        let ranks = crate::ranks::join()?;
        let device = ranks.device(args.device.unwrap_or(Device::Auto))?;
        let result = bench::ranks::lines(ranks.comm(), device, &data, args.quick, &mut emit);
        if let Err(e) = &result {
            crate::complain(&format!(
                "error: {e} (rank {}: ending the job)",
                ranks.comm().rank()
            ));
            ranks.abort(2);
        }
        return result;
    }
    if args.cold_start {
        let device = args.device.unwrap_or(Device::Cpu);
        let ms = bench::cold_start(device, &data, started)?;
        return emit(&bench::cold_start_line(device, ms));
    }
    let program = std::env::current_exe().map_err(|e| wgtrain::Error::File {
        path: "the wgtrain executable".into(),
        message: e.to_string(),
    })?;
    let options = Options {
        devices: args.device.map_or_else(
            || vec![Device::Cpu, Device::Fallback, Device::Gpu],
            |d| vec![d],
        ),
        skip_absent: args.device.is_none(),
        workload: args.workload,
        convs: ConvChoice::algorithms(args.conv),
        quick: args.quick,
        data: data.clone(),
        rerun: Some(Rerun {
            program,
            args: vec!["bench".into(), "--data".into(), OsString::from(data)],
        }),
    };
    let summaries = bench::run(&options, &mut emit)?;
    for line in summary(&summaries) {
        say!("# {line}")?;
    }
    Ok(())
}

/// A table of the epoch lines: where, what, and how fast.
fn summary(epochs: &[EpochSummary]) -> Vec<String> {
    if epochs.is_empty() {
        return vec!["no epoch lines".into()];
    }
    let mut rows = vec![[
        "device".to_string(),
        "adapter".into(),
        "workload".into(),
        "conv".into(),
        "batch".into(),
        "samples".into(),
        "epoch ms".into(),
        "GFLOP/s".into(),
    ]];
    for e in epochs {
        rows.push([
            e.device.clone(),
            e.adapter.clone(),
            e.layers.clone(),
            e.conv.clone().unwrap_or_else(|| "-".into()),
            e.batch.to_string(),
            e.samples.to_string(),
            format!("{:.2}", e.median_ms),
            format!("{:.2}", e.gflops),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut lines = vec![
        "median epoch time after a warm-up epoch; effective GFLOP/s = 3 x forward FLOPs per sample"
            .to_string(),
    ];
    lines.extend(rows.iter().map(|row| {
        row.iter()
            .enumerate()
            .map(|(c, cell)| {
                // Text left-aligned, numbers right-aligned.
                if c < 4 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    }));
    lines
}
