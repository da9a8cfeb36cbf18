//! `wgtrain verify`: every op of the engine is met and holds on the fallback adapter (lavapipe in CI), and a
//! device that computes one op wrongly fails exactly that op's row.

mod common;

use common::cli::*;
use std::collections::HashMap;
use wgtrain::backend::{Backend, BufferId, Counters, DeviceInfo, KernelId, Op, Region};
use wgtrain::verify::{self, Options};
use wgtrain::CpuBackend;

/// The CPU backend, except that what `target` writes reads back off by `error`.
struct WrongAt {
    inner: CpuBackend,
    target: &'static str,
    error: f32,
    names: HashMap<KernelId, &'static str>,
    last: &'static str,
}

impl Backend for WrongAt {
    fn info(&self) -> &DeviceInfo {
        self.inner.info()
    }
    fn alloc(&mut self, label: &str, len: usize) -> wgtrain::Result<BufferId> {
        self.inner.alloc(label, len)
    }
    fn free(&mut self, buffer: BufferId) -> wgtrain::Result<()> {
        self.inner.free(buffer)
    }
    fn write(&mut self, buffer: BufferId, offset: usize, data: &[f32]) -> wgtrain::Result<()> {
        self.last = "";
        self.inner.write(buffer, offset, data)
    }
    fn read(&mut self, region: Region) -> wgtrain::Result<Vec<f32>> {
        let mut values = self.inner.read(region)?;
        if self.last == self.target {
            values.iter_mut().for_each(|v| *v += self.error);
        }
        Ok(values)
    }
    fn prepare(&mut self, op: &Op) -> wgtrain::Result<KernelId> {
        let kernel = self.inner.prepare(op)?;
        self.names.insert(kernel, op.name());
        Ok(kernel)
    }
    fn enqueue(&mut self, kernel: KernelId) -> wgtrain::Result<()> {
        self.last = self.names[&kernel];
        self.inner.enqueue(kernel)
    }
    fn submit(&mut self) -> wgtrain::Result<()> {
        self.inner.submit()
    }
    fn counters(&self) -> Counters {
        self.inner.counters()
    }
    fn profile(
        &mut self,
        kernels: &[KernelId],
    ) -> wgtrain::Result<Option<Vec<(&'static str, f64)>>> {
        self.inner.profile(kernels)
    }
    fn memory_limits(&self) -> wgtrain::memory::MemoryLimits {
        self.inner.memory_limits()
    }
}

fn wrong_at(target: &'static str, error: f32) -> Vec<verify::Row> {
    let device = WrongAt {
        inner: CpuBackend::new(),
        target,
        error,
        names: HashMap::new(),
        last: "",
    };
    verify::op_parity(
        Box::new(CpuBackend::new()),
        Box::new(device),
        Options { quick: true },
    )
    .expect("op parity runs")
}

#[test]
fn a_wrong_op_fails_its_row_and_only_its_row() {
    for (target, error) in [("softmax", 1e-3), ("matmul_tn", 1e-2), ("dropout", 1e-6)] {
        let rows = wrong_at(target, error);
        for row in &rows {
            assert_eq!(
                row.ok,
                row.name != target,
                "{target} off by {error}: row {row:?}"
            );
        }
        let failed = rows.iter().find(|r| r.name == target).unwrap();
        assert!(
            (failed.max_abs_error - error).abs() <= error * 1e-3 + 1e-6,
            "{failed:?}"
        );
        assert!(failed.shapes.starts_with("fails at"), "{failed:?}");
    }
    // Within the tolerance is not a failure.
    assert!(wrong_at("matmul_tn", 1e-6).iter().all(|r| r.ok));
}

#[test]
fn every_op_is_met_and_holds_on_the_fallback_adapter() {
    if common::gpu_backend().is_none() {
        return;
    }
    let report = report(&["verify", "--device", "fallback", "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
    assert!(report["adapter"].as_str().is_some_and(|a| !a.is_empty()));
    let rows = report["rows"].as_array().unwrap();
    for (entry, _) in wgtrain::ops::ENTRY_POINTS {
        let row = rows
            .iter()
            .find(|r| r["name"] == *entry)
            .unwrap_or_else(|| panic!("no row for {entry}"));
        assert_eq!(row["ok"], true, "{row}");
        assert_eq!(row["kind"], "op");
    }
    for kind in ["gradient", "training"] {
        let found: Vec<_> = rows.iter().filter(|r| r["kind"] == kind).collect();
        assert_eq!(found.len(), 2, "{kind} rows: {found:?}");
        assert!(found.iter().all(|r| r["ok"] == true), "{found:?}");
    }
    // The edge shapes ran: a 40000-long product and a 70000-row batch.
    let matmul = rows
        .iter()
        .find(|r| r["name"] == "matmul_bias_act")
        .unwrap();
    assert!(
        matmul["shapes"].as_str().unwrap().contains("70000"),
        "{matmul}"
    );
}

#[test]
fn the_table_and_its_exit_codes() {
    let out = ok(&["verify", "--device", "cpu", "--quick"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("verify on "), "{out}");
    assert!(lines[1].starts_with("check"), "{out}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("op ") && l.contains("matmul_bias_act")));
    let last = lines.last().unwrap();
    assert!(
        last.ends_with("checks hold") && last.starts_with(&format!("{0} of {0}", lines.len() - 3)),
        "{last}"
    );
    fails(&["verify", "--device", "nosuchadapter"], &["nosuchadapter"]);
    fails(&["verify", "--quick", "--bogus"], &["--bogus"]);
}
