//! Parity of the ops that gather mini-batches from a training set held on the device
//! (`src/ops/data.rs`, `shaders/data.wgsl`). They copy and count, so the GPU must match the CPU (and the
//! expected rows) exactly.

use crate::common::{run_op, uniform};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::{AdvanceCursor, GatherRows};
use wgtrain::CpuBackend;

fn bits(indices: &[u32]) -> Vec<f32> {
    indices.iter().map(|&i| f32::from_bits(i)).collect()
}

#[test]
fn gather_rows() {
    let Some(mut gpu) = gpu_backend() else { return };
    let (source_rows, cols) = (37, 13);
    let source = uniform(5, source_rows * cols, -3.0, 3.0);
    // A permutation of the source rows, with one index past its end (gives a zero row).
    let mut order: Vec<u32> = (0..source_rows as u32).rev().collect();
    order[9] = 99;
    // (cursor, rows): from the start, across the bad index, and running past the end of `order`.
    for (cursor, rows) in [(0, 8), (5, 20), (30, 12)] {
        let buffers = [
            source.clone(),
            bits(&order),
            bits(&[cursor]),
            vec![f32::NAN; rows * cols],
        ];
        let make = |b: &[wgtrain::backend::BufferId]| {
            Op::GatherRows(GatherRows {
                source: b[0].region(source_rows * cols),
                order: b[1].region(order.len()),
                cursor: b[2].region(1),
                output: b[3].region(rows * cols),
                rows,
                cols,
            })
        };
        let cpu = run_op(&mut CpuBackend::new(), &buffers, &make);
        let mut expected = Vec::new();
        for r in 0..rows {
            match order.get(cursor as usize + r).map(|&i| i as usize) {
                Some(i) if i < source_rows => {
                    expected.extend_from_slice(&source[i * cols..(i + 1) * cols])
                }
                _ => expected.extend(std::iter::repeat_n(0.0, cols)),
            }
        }
        assert_eq!(cpu[3], expected, "CPU gather from {cursor}, {rows} rows");
        let gpu_out = run_op(&mut gpu, &buffers, &make);
        assert_eq!(
            gpu_out[3], cpu[3],
            "GPU vs CPU gather from {cursor}, {rows} rows"
        );
    }
}

#[test]
fn advance_cursor() {
    let Some(mut gpu) = gpu_backend() else { return };
    for (start, rows) in [(0u32, 64usize), (7, 1), (70_000, 128)] {
        let buffers = [bits(&[start])];
        let make = |b: &[wgtrain::backend::BufferId]| {
            Op::AdvanceCursor(AdvanceCursor {
                cursor: b[0].region(1),
                rows,
            })
        };
        let cpu = run_op(&mut CpuBackend::new(), &buffers, &make);
        assert_eq!(cpu[0][0].to_bits(), start + rows as u32, "CPU from {start}");
        let gpu_out = run_op(&mut gpu, &buffers, &make);
        assert_eq!(
            gpu_out[0][0].to_bits(),
            start + rows as u32,
            "GPU from {start}"
        );
    }
}
