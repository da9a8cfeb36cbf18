//! Matrix products for the CPU backend: `matrixmultiply`'s sgemm, split over cores when large.

/// Cores to split large products over, asked once: `available_parallelism` reads cgroup files on Linux,
/// which cost as much as a small product when done per call.
pub(super) fn available_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Products of at least this many multiply-adds (1024³ is 2^30) are split by rows over the available cores.
/// Smaller ones stay on one thread: on the 2-core development machine, splitting the bench's 2^23–2^25
/// products made its 784-256-256-10 epoch 10–25% slower (thread start-up and cache traffic), while 1024³
/// went from 170 to 320 GFLOP/s (`examples/bench.rs`).
const PARALLEL_MIN_MACS: usize = 1 << 26;

/// The largest index a `rows × cols` matrix with strides `(rs, cs)` touches, plus one.
fn extent(rows: usize, cols: usize, (rs, cs): (usize, usize)) -> usize {
    (rows - 1) * rs + (cols - 1) * cs + 1
}

/// `c[m, n] = a · b` (`c` row-major), where the strides say how `a` and `b` are laid out. Large products
/// run on several threads, each over its own rows of `c`.
pub(super) fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = available_threads().min(m);
    if threads < 2 || m * n * k < PARALLEL_MIN_MACS {
        return gemm_serial((m, k, n), a, a_strides, b, b_strides, c);
    }
    let rows_per_thread = m.div_ceil(threads);
    std::thread::scope(|scope| {
        for (chunk, c_rows) in c[..m * n].chunks_mut(rows_per_thread * n).enumerate() {
            let first = chunk * rows_per_thread;
            let rows = c_rows.len() / n;
            let a_rows = &a[first * a_strides.0..];
            scope.spawn(move || gemm_serial((rows, k, n), a_rows, a_strides, b, b_strides, c_rows));
        }
    });
}

fn gemm_serial(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
) {
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    assert!(
        a.len() >= extent(m, k, (rsa, csa))
            && b.len() >= extent(k, n, (rsb, csb))
            && c.len() >= m * n
    );
    // SAFETY: the assert bounds every index sgemm reads or writes: a[i*rsa + p*csa] for i < m, p < k is
    // below extent(m, k), likewise b, and c is row-major with stride n.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
