//! Kernels chosen by measurement. An op with [`Kernel::variants`](crate::ops::Kernel::variants) (a matrix
//! product's workgroup shapes) is timed in every variant the first time its
//! [`tuning_key`](crate::ops::Kernel::tuning_key) comes up, with the adapter's timestamp queries on the
//! op's own buffers, and the fastest variant is kept for every later op of that key. The variants compute
//! the same sums in the same order, so the choice changes the time and nothing else.
//!
//! Bounded: the default variant runs first, and a product it takes [`LONG_KERNEL_US`] for is left as it
//! is; then at most [`ROUNDS`] rounds of every variant, one when a round takes [`LONG_ROUND`]; no new key
//! is timed once [`BUDGET`] has been spent on this device. Beyond the budget, on adapters without
//! timestamp queries, and with `WGTRAIN_TUNE=off`, ops run in their default variant.
//!
//! The choices are kept in a small file per adapter and driver version (see [`cache_file`]), so later
//! runs start without measuring; a file that cannot be read or parsed is ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::WgpuBackend;
use crate::backend::Op;
use crate::error::Result;

/// Rounds of timing each variant once; the fastest round of each counts.
const ROUNDS: usize = 3;
/// Rounds run even when they are long: one round alone says too little on a busy machine.
const MIN_ROUNDS: usize = 2;
/// Past [`MIN_ROUNDS`], a round that takes this long is not repeated.
const LONG_ROUND: Duration = Duration::from_millis(40);
/// A product whose default variant takes this long (µs) is not timed in the others: on a slow adapter
/// (llvmpipe and a 1024³ product) one round would cost seconds of start-up.
const LONG_KERNEL_US: f64 = 50_000.0;
/// How much faster than the default a variant must be to be chosen.
const MARGIN: f64 = 0.1;
/// Time spent timing variants on one device, at most (cold start stays well under a second).
const BUDGET: Duration = Duration::from_millis(300);

/// What was measured on this device.
#[derive(Default)]
pub(super) struct Tuning {
    /// Each key's chosen variant, as an index into the op's variants.
    chosen: HashMap<String, usize>,
    spent: Duration,
    /// Choices read from the cache file (key → variant name), once loaded.
    saved: Option<HashMap<String, String>>,
}

/// First line of a cache file; a file that does not start with it is ignored.
const CACHE_HEADER: &str = "wgtrain kernel choices 1";
/// Cache files larger than this are not read (a cache holds a line per product shape).
const CACHE_MAX_BYTES: u64 = 1 << 20;

/// Where this adapter's choices are kept between runs: `$WGTRAIN_CACHE_DIR`, else `$XDG_CACHE_HOME/wgtrain`,
/// else `~/.cache/wgtrain`, one file per adapter and driver version, named after them.
fn cache_file(adapter: &str, driver: &str) -> Option<PathBuf> {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = env("WGTRAIN_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("wgtrain")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("wgtrain")))?;
    let name: String = format!("{adapter}--{driver}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    Some(dir.join(format!("{name}.tuning")))
}

/// The choices in a cache file: `key<TAB>variant` lines after the header. Anything unreadable, a file that
/// is not a regular file, a wrong header or a malformed line gives no choices (or skips the line):
/// the cache only ever saves time.
fn read_cache(path: &Path) -> HashMap<String, String> {
    let regular = std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_file() && m.len() <= CACHE_MAX_BYTES);
    let text = regular
        .then(|| std::fs::read_to_string(path).ok())
        .flatten();
    let Some(text) = text else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some(CACHE_HEADER) {
        return HashMap::new();
    }
    lines
        .filter_map(|line| line.split_once('\t'))
        .filter(|(key, variant)| !key.is_empty() && !variant.is_empty())
        .map(|(key, variant)| (key.to_string(), variant.to_string()))
        .collect()
}

/// Writes `choices` to `path` through a temporary file in the same folder, renamed into place only over
/// a regular file or nothing. Failures are left unreported beyond a debug line: the cache is optional.
fn write_cache(path: &Path, choices: &HashMap<String, String>) {
    let write = || -> std::io::Result<()> {
        let dir = path.parent().ok_or(std::io::ErrorKind::NotFound)?;
        std::fs::create_dir_all(dir)?;
        if std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file()) {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        let mut lines: Vec<String> = choices.iter().map(|(k, v)| format!("{k}\t{v}")).collect();
        lines.sort();
        let temporary = path.with_extension(format!("tuning.{}.tmp", std::process::id()));
        std::fs::write(
            &temporary,
            format!("{CACHE_HEADER}\n{}\n", lines.join("\n")),
        )?;
        std::fs::rename(&temporary, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    };
    if let Err(e) = write() {
        log::debug!("not saving kernel choices to {}: {e}", path.display());
    }
}

/// `WGTRAIN_TUNE=off` (or `0`, `false`) keeps every op in its default variant; unset, `on`, `1` or `true`
/// measures. Any other value measures too, with a warning naming the variable and what it takes.
fn enabled() -> bool {
    match std::env::var("WGTRAIN_TUNE").as_deref() {
        Ok("off" | "0" | "false") => false,
        Err(std::env::VarError::NotPresent) | Ok("" | "on" | "1" | "true") => true,
        Ok(other) => {
            log::warn!("WGTRAIN_TUNE={other:?} is not on or off; measuring kernels as with on");
            true
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            log::warn!("WGTRAIN_TUNE is not valid UTF-8 (expected on or off); measuring kernels as with on");
            true
        }
    }
}

impl WgpuBackend {
    /// The op to prepare: `op` itself, or the variant measured fastest for its key here.
    pub(super) fn tuned(&mut self, op: &Op) -> Result<Op> {
        let kernel = op.kernel();
        let Some(key) = kernel.tuning_key() else {
            return Ok(*op);
        };
        let variants = kernel.variants();
        if let Some(&chosen) = self.tuning.chosen.get(&key) {
            return Ok(variants.get(chosen).copied().unwrap_or(*op));
        }
        if !enabled() {
            return Ok(*op);
        }
        let cache = cache_file(&self.info.adapter, &self.info.driver);
        let saved = self
            .tuning
            .saved
            .get_or_insert_with(|| cache.as_deref().map(read_cache).unwrap_or_default());
        let name = |v: &Op| v.kernel().variant_name().unwrap_or_default();
        if let Some(at) = saved
            .get(&key)
            .and_then(|wanted| variants.iter().position(|v| &name(v) == wanted))
        {
            self.tuning.chosen.insert(key, at);
            return Ok(variants[at]);
        }
        let timestamps = self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY);
        if !timestamps || variants.len() < 2 || self.tuning.spent >= BUDGET {
            return Ok(*op);
        }
        let started = Instant::now();
        // The default variant alone first: a product that takes long already is left as it is, so the
        // other variants are neither compiled nor run.
        let default = self.prepare_variant(&variants[0])?;
        let Some(first) = self.profile_kernels(&[default])? else {
            return Ok(*op);
        };
        if first[0].1 >= LONG_KERNEL_US {
            self.tuning.spent += started.elapsed();
            return Ok(self.keep(key, &variants, 0, cache.as_deref()));
        }
        let mut ids = vec![default];
        for variant in &variants[1..] {
            ids.push(self.prepare_variant(variant)?);
        }
        let mut best = vec![f64::INFINITY; ids.len()];
        for round in 0..ROUNDS {
            let started_round = Instant::now();
            // Every other round in reverse order, so that a drift in the machine's speed during a
            // round favours no variant.
            let order: Vec<usize> = if round % 2 == 0 {
                (0..ids.len()).collect()
            } else {
                (0..ids.len()).rev().collect()
            };
            let kernels: Vec<_> = order.iter().map(|&i| ids[i]).collect();
            let Some(times) = self.profile_kernels(&kernels)? else {
                return Ok(*op);
            };
            for (&i, (_, us)) in order.iter().zip(times) {
                best[i] = best[i].min(us);
            }
            if round + 1 >= MIN_ROUNDS && started_round.elapsed() >= LONG_ROUND {
                break;
            }
        }
        // The fastest, where it beats the default (listed first) by MARGIN: a measurement taken while
        // something else ran must not leave a worse shape in the cache for good.
        let fastest = (0..best.len()).fold(0, |b, i| if best[i] < best[b] { i } else { b });
        let chosen = if best[fastest] < best[0] * (1.0 - MARGIN) {
            fastest
        } else {
            0
        };
        self.tuning.spent += started.elapsed();
        log::debug!(
            "tuned {key}: {} ({:.0} µs; default {:.0} µs)",
            variants[chosen].kernel().variant_name().unwrap_or_default(),
            best[chosen],
            best[0]
        );
        Ok(self.keep(key, &variants, chosen, cache.as_deref()))
    }

    /// Records `variants[chosen]` as `key`'s choice, here and in the cache file; returns it.
    fn keep(&mut self, key: String, variants: &[Op], chosen: usize, cache: Option<&Path>) -> Op {
        self.tuning.chosen.insert(key.clone(), chosen);
        if let (Some(path), Some(saved)) = (cache, self.tuning.saved.as_mut()) {
            let name = variants[chosen].kernel().variant_name().unwrap_or_default();
            saved.insert(key, name);
            write_cache(path, saved);
        }
        variants[chosen]
    }
}
