// Confusion counts of a classifier's outputs over m rows, added atomically:
//   counts[truth * classes + predicted] += 1,  classes = max(n, 2)
// predicted: the first maximum of the row's n outputs, or for one output (n = 1) whether it is above
//   dims.scale (0 for a logit, 0.5 for a probability);
// truth: the class index targets[row] when the targets are k = 1 wide, else the first maximum of the
//   row's k one-hot targets. A truth outside the classes is not counted.
// The counts are u32 bit patterns in a buffer the host otherwise reads as f32 (Rust: `f32::from_bits`).

@group(0) @binding(1) var<storage, read> prediction: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;

@compute @workgroup_size(64)
fn confusion_counts(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= dims.m {
        return;
    }
    let classes = max(dims.n, 2u);
    var predicted = 0u;
    if dims.n == 1u {
        predicted = select(0u, 1u, prediction[row] > dims.scale);
    } else {
        let base = row * dims.n;
        for (var j = 1u; j < dims.n; j++) {
            if prediction[base + j] > prediction[base + predicted] {
                predicted = j;
            }
        }
    }
    var truth = 0u;
    if dims.k == 1u {
        truth = u32(targets[row]);
    } else {
        let base = row * dims.k;
        for (var j = 1u; j < dims.k; j++) {
            if targets[base + j] > targets[base + truth] {
                truth = j;
            }
        }
    }
    if truth < classes {
        atomicAdd(&counts[truth * classes + predicted], 1u);
    }
}
