//! The benchmark of `wgtrain::bench` (the same lines as `wgtrain bench`, without its summary): matmul
//! throughput, epoch time on the MNIST subset, cold start, per-step overhead and memory, on every device
//! it can get (or `--device cpu|fallback|gpu`), one JSON object per line, in the format of the peer
//! scripts in `../shared/peers/`.
//! `cargo run --release --example bench [-- --device D] [--workload mlp|cnn|all] [--conv im2col|direct|both] [--quick]`.

use std::path::Path;
use std::time::Instant;
use wgtrain::bench::{self, ConvChoice, Options, Rerun, Workload};
use wgtrain::Device;

fn main() {
    let started = Instant::now();
    wgtrain::device::quiet_headless_drivers();
    if let Err(e) = run(started) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run(started: Instant) -> wgtrain::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k-train-images-idx3-ubyte.gz");
    // A reader that has gone (`| head -1`) ends the run with an error line, not a panic in `println!`.
    let mut emit = |line: &str| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| wgtrain::Error::File {
                path: "standard output".into(),
                message: e.to_string(),
            })
    };
    if args.iter().any(|a| a == "--cold-start") {
        let device: Device = value("--device").unwrap_or("cpu").parse()?;
        let ms = bench::cold_start(device, &data, started)?;
        return emit(&bench::cold_start_line(device, ms));
    }
    let devices = match value("--device") {
        Some(d) => vec![d.parse()?],
        None => vec![Device::Cpu, Device::Fallback, Device::Gpu],
    };
    let conv = value("--conv").map(str::parse::<ConvChoice>).transpose()?;
    let options = Options {
        devices,
        // A device this machine lacks is skipped with a note on stderr, so one command covers any machine.
        skip_absent: true,
        workload: value("--workload").map_or(Ok(Workload::All), str::parse)?,
        convs: ConvChoice::algorithms(conv),
        quick: args.iter().any(|a| a == "--quick"),
        data,
        rerun: Some(Rerun {
            program: std::env::current_exe().map_err(|e| wgtrain::Error::File {
                path: "bench".into(),
                message: e.to_string(),
            })?,
            args: Vec::new(),
        }),
    };
    bench::run(&options, &mut emit)?;
    Ok(())
}
