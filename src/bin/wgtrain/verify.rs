//! `wgtrain verify`: every op, the gradients and short training runs on the chosen adapter against the CPU
//! reference, as a table (see [`wgtrain::verify`]). Exits 0 only when every row holds, 1 when one does not.

use crate::DeviceArg;
use clap::Args;
use wgtrain::verify::{self, Options, Row};
use wgtrain::Result;

#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub device: DeviceArg,
    /// Leave out the edge shapes whose sums run in windows (a 40000-long product, a 70000-row batch)
    #[arg(long)]
    pub quick: bool,
    /// One JSON object: the adapter and every row
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &VerifyArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let (info, rows) = verify::run(device, Options { quick: args.quick })?;
    let failed = rows.iter().filter(|r| !r.ok).count();
    if args.json {
        let report = serde_json::json!({
            "adapter": info.adapter,
            "api": info.api,
            "type": info.device_type,
            "driver": info.driver,
            "rows": rows,
            "ok": failed == 0,
        });
        say!("{report}")?;
    } else {
        say!(
            "verify on {} ({}, {}, {}) against the CPU reference",
            info.adapter,
            info.api,
            info.device_type,
            info.driver
        )?;
        table(&rows)?;
        say!(
            "{} of {} checks hold{}",
            rows.len() - failed,
            rows.len(),
            if failed == 0 {
                ""
            } else {
                "; FAILED: see the rows marked FAIL"
            }
        )?;
    }
    if failed > 0 {
        crate::complain(&format!(
            "verify: {failed} of {} checks failed on {}",
            rows.len(),
            info.adapter
        ));
        std::process::exit(1);
    }
    Ok(())
}

/// Columns padded to their widest cell; long shape descriptions are kept whole in the last-but-two column.
fn table(rows: &[Row]) -> Result<()> {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.kind.to_string(),
                r.name.clone(),
                format!("{:.3e}", r.max_abs_error),
                r.tolerance.clone(),
                if r.ok { "ok" } else { "FAIL" }.to_string(),
                r.shapes.clone(),
            ]
        })
        .collect();
    let header = [
        "check",
        "name",
        "max abs error",
        "tolerance",
        "ok",
        "shapes",
    ]
    .map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&cells) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 5 {
                    cell.clone()
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        say!("{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
