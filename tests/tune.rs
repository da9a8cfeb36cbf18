//! Kernels chosen by measurement (`src/gpu/tune.rs`) and the file that keeps the choices between runs.
//! One test, run in steps, because it sets process-wide variables (`WGTRAIN_CACHE_DIR`, `WGTRAIN_TUNE`)
//! that the backend reads; this file is its own test process.

mod common;

use common::{assert_close, gpu_backend, run_op, uniform, MATMUL};
use wgtrain::backend::{Backend, BufferId, KernelId, Op};
use wgtrain::ops::{MatmulTn, Workgroup};
use wgtrain::CpuBackend;

/// A weight gradient large enough to be timed: `[m, n] = [k, m]ᵀ · [k, n]`.
const SHAPE: (usize, usize, usize) = (256, 128, 64);

fn weight_gradient(b: &[BufferId]) -> Op {
    let (m, n, k) = SHAPE;
    Op::MatmulTn(MatmulTn {
        input: b[0].region(k * m),
        grad_output: b[1].region(k * n),
        grad_weights: b[2].region(m * n),
        m,
        k,
        n,
        workgroup: None,
    })
}

fn operands() -> Vec<Vec<f32>> {
    let (m, n, k) = SHAPE;
    vec![
        uniform(1, k * m, -1.0, 1.0),
        uniform(2, k * n, -1.0, 1.0),
        vec![f32::NAN; m * n],
    ]
}

/// Prepares the weight gradient on a fresh GPU backend; its chosen workgroup shape.
fn chosen_shape() -> String {
    let mut gpu = gpu_backend().expect("checked by the caller");
    let buffers: Vec<BufferId> = operands()
        .iter()
        .map(|data| {
            let id = gpu.alloc("operand", data.len()).expect("alloc");
            gpu.write(id, 0, data).expect("write");
            id
        })
        .collect();
    let kernel: KernelId = gpu.prepare(&weight_gradient(&buffers)).expect("prepare");
    gpu.kernel_variant(kernel)
        .expect("a matmul reports its shape")
}

#[test]
fn choices_are_measured_kept_and_never_trusted_blindly() {
    let Some(mut gpu) = gpu_backend() else { return };
    let dir = std::env::temp_dir().join(format!("wgtrain-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::env::set_var("WGTRAIN_CACHE_DIR", &dir);
    std::env::remove_var("WGTRAIN_TUNE");

    // Measured on first use: whichever shape wins, the values are the CPU's.
    let gpu_out = run_op(&mut gpu, &operands(), &weight_gradient);
    let cpu_out = run_op(&mut CpuBackend::new(), &operands(), &weight_gradient);
    assert_close("tuned weight gradient", &gpu_out[2], &cpu_out[2], MATMUL);

    // The choice was saved: one file, the header, then the product's key and a candidate's name.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the cache folder was made")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = files[0].clone();
    let text = std::fs::read_to_string(&file).expect("readable");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("wgtrain kernel choices 1"));
    let names: Vec<String> = Workgroup::CANDIDATES
        .iter()
        .map(|w| w.to_string())
        .collect();
    let (key, saved) = lines
        .find(|l| l.starts_with("matmul_tn "))
        .and_then(|l| l.split_once('\t'))
        .expect("a line for the weight gradient");
    assert_eq!(key, "matmul_tn m256 k64 n128");
    assert!(names.iter().any(|n| n == saved), "{saved} is no candidate");
    assert_eq!(
        chosen_shape(),
        saved,
        "a new backend reads the saved choice"
    );

    // A saved choice is used as it is, without measuring again.
    let other = names
        .iter()
        .find(|n| *n != saved)
        .expect("several candidates");
    std::fs::write(&file, format!("wgtrain kernel choices 1\n{key}\t{other}\n")).expect("write");
    assert_eq!(&chosen_shape(), other);

    // A corrupt file, one with an unknown shape, and a folder where the file should be are ignored:
    // the product is measured again, and the file made anew where it can be.
    for bad in [
        "\u{0}\u{1}garbage".to_string(),
        format!("wgtrain kernel choices 1\n{key}\t7x7\n"),
        format!("wgtrain kernel choices 999\n{key}\t{other}\n"),
    ] {
        std::fs::write(&file, bad).expect("write");
        assert!(names.contains(&chosen_shape()));
        let text = std::fs::read_to_string(&file).expect("rewritten");
        assert!(text.starts_with("wgtrain kernel choices 1\n"), "{text:?}");
    }
    std::fs::remove_file(&file).expect("remove");
    std::fs::create_dir(&file).expect("a folder in the file's place");
    assert!(names.contains(&chosen_shape()));
    assert!(file.is_dir(), "the folder was left alone");

    // WGTRAIN_TUNE=off: the default shape, saved choices or not.
    std::fs::remove_dir(&file).expect("remove");
    std::fs::write(&file, format!("wgtrain kernel choices 1\n{key}\t{other}\n")).expect("write");
    std::env::set_var("WGTRAIN_TUNE", "off");
    assert_eq!(chosen_shape(), Workgroup::DEFAULT.to_string());
    std::env::remove_var("WGTRAIN_TUNE");
    let _ = std::fs::remove_dir_all(&dir);
}
