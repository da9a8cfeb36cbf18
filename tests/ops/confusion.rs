//! The confusion counts (`src/ops/confusion.rs`, `shaders/confusion.wgsl`): the same counts on both
//! backends, bit for bit, and the counts a direct tally of the rows gives.

use crate::common::{run_op, uniform};
use crate::gpu_backend;
use wgtrain::backend::Op;
use wgtrain::ops::ConfusionCounts;
use wgtrain::CpuBackend;

/// The first maximum's index, as everywhere in wgtrain.
fn first_max(values: &[f32]) -> usize {
    (0..values.len()).fold(0, |best, j| if values[j] > values[best] { j } else { best })
}

#[test]
fn confusion_counts() {
    let mut gpu = gpu_backend();
    // (rows, outputs, target width, threshold): one output around 0 (logits) or 0.5 (probabilities), a
    // class index per row (ce), one-hot rows, and more rows than a workgroup holds, with ties.
    for &(rows, outputs, width, threshold) in &[
        (1, 1, 1, 0.0),
        (100, 1, 1, 0.5),
        (300, 10, 1, 0.0),
        (65, 4, 4, 0.0),
        (5000, 3, 1, 0.0),
    ] {
        let mut prediction = uniform(rows as u64, rows * outputs, -1.0, 1.0);
        if outputs > 1 {
            // A tie: the first of equal maxima is the prediction.
            prediction[0] = 2.0;
            prediction[1] = 2.0;
        }
        let classes = outputs.max(2);
        let labels: Vec<usize> = uniform(rows as u64 + 1, rows, 0.0, classes as f32)
            .iter()
            .map(|v| v.floor() as usize)
            .collect();
        let target: Vec<f32> = if width == 1 {
            labels.iter().map(|&l| l as f32).collect()
        } else {
            labels
                .iter()
                .flat_map(|&l| (0..width).map(move |j| f32::from(u8::from(j == l))))
                .collect()
        };
        let buffers = [prediction.clone(), target, vec![0.0; classes * classes]];
        let make = |b: &[wgtrain::backend::BufferId]| {
            Op::ConfusionCounts(ConfusionCounts {
                prediction: b[0].region(rows * outputs),
                target: b[1].region(rows * width),
                counts: b[2].region(classes * classes),
                rows,
                outputs,
                target_width: width,
                threshold,
            })
        };
        let mut expected = vec![0u32; classes * classes];
        for (row, &truth) in labels.iter().enumerate() {
            let values = &prediction[row * outputs..(row + 1) * outputs];
            let predicted = if outputs == 1 {
                usize::from(values[0] > threshold)
            } else {
                first_max(values)
            };
            expected[truth * classes + predicted] += 1;
        }
        let bits = |out: &[Vec<f32>]| out[2].iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        let cpu = run_op(&mut CpuBackend::new(), &buffers, &make);
        assert_eq!(bits(&cpu), expected, "CPU counts, {rows}x{outputs}");
        if let Some(gpu) = gpu.as_mut() {
            let on_gpu = run_op(gpu, &buffers, &make);
            assert_eq!(bits(&on_gpu), expected, "GPU counts, {rows}x{outputs}");
        }
    }
}
