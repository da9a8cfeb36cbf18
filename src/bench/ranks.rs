//! The data-parallel lines, run as one rank of a job (`mpirun -np N wgtrain bench --distributed`): the
//! allreduce of a step's gradient buffer at the sizes of the bench's networks, and the MLP epoch of the
//! bench at this many ranks. Rank 0 prints.

use super::epoch::network;
use super::{load, EPOCH_CONFIGS, LEARNING_RATE};
use crate::distributed::Collective;
use crate::{Device, Model, Optimizer, Result, TrainConfig};
use std::path::Path;
use std::time::Instant;

/// Allreduces timed at each size after the warm-up ones; the median is reported.
const ALLREDUCE_RUNS: usize = 21;
/// A buffer of 4M floats (16 MiB): where bandwidth, not latency, sets the time.
const LARGE_FLOATS: usize = 1 << 22;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `{"kind":"allreduce",…}` for each size and `{"kind":"epoch_distributed",…}` for each MLP of the bench.
pub fn lines(
    comm: &dyn Collective,
    device: Device,
    data: &Path,
    quick: bool,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    let ranks = comm.size();
    let mut sizes: Vec<(String, usize)> = Vec::new();
    for (widths, _) in EPOCH_CONFIGS {
        // The step's buffer: every gradient and the normaliser.
        let floats = network(widths)?.param_len() as usize + 1;
        sizes.push((label(widths), floats));
    }
    sizes.push(("16MiB".into(), LARGE_FLOATS));
    for (what, floats) in &sizes {
        let mut buffer = vec![1.0f32; *floats];
        for _ in 0..3 {
            comm.allreduce_sum(&mut buffer)?;
        }
        let mut times = Vec::with_capacity(ALLREDUCE_RUNS);
        for _ in 0..ALLREDUCE_RUNS {
            let start = Instant::now();
            comm.allreduce_sum(&mut buffer)?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        // Every rank's time counts: the slowest is what a step waits for.
        let mut each = vec![0.0f32; ranks];
        each[comm.rank()] = median(times) as f32;
        comm.allreduce_sum(&mut each)?;
        let slowest = each.iter().copied().fold(0.0, f32::max);
        if comm.rank() == 0 {
            emit(&format!(
                "{{\"kind\":\"allreduce\",\"ranks\":{ranks},\"buffer\":\"{what}\",\"bytes\":{},\"ms\":{slowest:.3}}}",
                floats * 4
            ))?;
        }
    }
    let mnist = load(data, quick.then_some(2000))?;
    for (widths, batch) in EPOCH_CONFIGS {
        let mut model = Model::new(network(widths)?, device, 0)?;
        model.broadcast_parameters(comm)?;
        let adapter = model.device_info().adapter.clone();
        let config = TrainConfig {
            batch_size: Some(batch),
            learning_rate: LEARNING_RATE,
            optimizer: Optimizer::Sgd,
            ..TrainConfig::default()
        };
        let (x, y) = (&mnist.features, &mnist.targets);
        model.train_epoch_distributed(x, y, None, &config, comm)?; // warm-up
        let mut runs = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            model.train_epoch_distributed(x, y, None, &config, comm)?;
            runs.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let steps = mnist.rows().div_ceil(batch * ranks);
        let ms = median(runs);
        if comm.rank() == 0 {
            emit(&format!(
                "{{\"kind\":\"epoch_distributed\",\"ranks\":{ranks},\"device\":\"{}\",\"adapter\":{},\"layers\":\"{}\",\"batch\":{batch},\"global_batch\":{},\"samples\":{},\"steps\":{steps},\"median_ms\":{ms:.2},\"step_ms\":{:.3}}}",
                device.name(),
                serde_json::to_string(&adapter).unwrap_or_else(|_| "\"?\"".into()),
                label(widths),
                batch * ranks,
                mnist.rows(),
                ms / steps as f64
            ))?;
        }
    }
    Ok(())
}

fn label(widths: &[usize]) -> String {
    widths
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("-")
}
