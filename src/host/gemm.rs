//! Matrix products for the CPU backend: `matrixmultiply`'s sgemm, split over cores when large.

use super::pool;

/// Products of at least this many multiply-adds are split over the helper threads of `pool.rs`, each
/// part at least half of it. Below it, handing a part over costs about what it saves.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Parts are whole multiples of this many rows (or columns) of `c`: the height and width of the sgemm
/// micro-kernels, so no part has a ragged edge in the middle of `c`.
const PART_BLOCK: usize = 16;

/// The largest index a `rows × cols` matrix with strides `(rs, cs)` touches, plus one.
fn extent(rows: usize, cols: usize, (rs, cs): (usize, usize)) -> usize {
    (rows - 1) * rs + (cols - 1) * cs + 1
}

/// Panics unless `a`, `b` and `c` hold every index an `m × k` by `k × n` product with these strides reaches:
/// the bound the unsafe sgemm calls rely on.
fn check_extents(
    (m, k, n): (usize, usize, usize),
    a_len: usize,
    a_strides: (usize, usize),
    b_len: usize,
    b_strides: (usize, usize),
    c_len: usize,
) {
    assert!(a_len >= extent(m, k, a_strides) && b_len >= extent(k, n, b_strides) && c_len >= m * n);
}

/// `c` as a pointer that may cross threads; each part writes only its own block.
#[derive(Clone, Copy)]
struct Output(*mut f32);
// SAFETY: every part writes a block of `c` disjoint from the others' (see `gemm`).
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

impl Output {
    /// The block starting `offset` elements in.
    ///
    /// # Safety
    /// `offset` must be inside `c`.
    unsafe fn at(self, offset: usize) -> Output {
        Output(self.0.add(offset))
    }
}

/// `c[m, n] = a · b` (`c` row-major), where the strides say how `a` and `b` are laid out. Large products
/// are split by rows of `c` (by columns when there are too few rows) between this thread and helpers.
pub(crate) fn gemm(
    dims: (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    c: &mut [f32],
) {
    gemm_then(dims, a, a_strides, b, b_strides, c, &|_| {});
}

/// [`gemm`], then `epilogue` over whole rows of `c`: each part's rows right after its product, on the
/// same core while they are still in its cache.
pub(crate) fn gemm_then(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    c: &mut [f32],
    epilogue: &(dyn Fn(&mut [f32]) + Sync),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return epilogue(&mut c[..m * n]);
    }
    check_extents((m, k, n), a.len(), a_strides, b.len(), b_strides, c.len());
    let out = Output(c.as_mut_ptr());
    let macs = m * n * k;
    let parts = if macs < PARALLEL_MIN_MACS {
        1
    } else {
        pool::parts_available().min(macs / (PARALLEL_MIN_MACS / 2))
    };
    let split_rows = m >= parts * PART_BLOCK;
    let len = if split_rows { m } else { n };
    if parts < 2 || len < parts * PART_BLOCK {
        // SAFETY: check_extents bounds every index of a, b and c.
        unsafe {
            gemm_block(
                (m, k, n),
                a.as_ptr(),
                a_strides,
                b.as_ptr(),
                b_strides,
                out,
                n,
                0.0,
            )
        };
        return epilogue(&mut c[..m * n]);
    }
    let per_part = len.div_ceil(parts).next_multiple_of(PART_BLOCK);
    let part = |index: usize| {
        let first = index * per_part;
        let count = per_part.min(len - first);
        let (dims, a_at, b_at, c_at) = if split_rows {
            ((count, k, n), first * a_strides.0, 0, first * n)
        } else {
            ((m, k, count), 0, first * b_strides.1, first)
        };
        // SAFETY: the part lies inside the extents asserted above, and different parts write disjoint
        // rows (or columns) of c.
        unsafe {
            let a = a.as_ptr().add(a_at);
            let b = b.as_ptr().add(b_at);
            gemm_block(dims, a, a_strides, b, b_strides, out.at(c_at), n, 0.0);
            if split_rows {
                epilogue(std::slice::from_raw_parts_mut(out.at(c_at).0, count * n));
            }
        }
    };
    pool::run(len.div_ceil(per_part), &part);
    if !split_rows {
        epilogue(&mut c[..m * n]);
    }
}

/// `c = a · b`, or `c += a · b` when `accumulate`, on this thread alone: for the products inside a loop
/// that is already split over the helper threads (the per-sample products of `ops::conv2d`).
pub(crate) fn gemm_serial(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    c: &mut [f32],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    check_extents((m, k, n), a.len(), a_strides, b.len(), b_strides, c.len());
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: check_extents bounds every index of a, b and c.
    unsafe {
        gemm_block(
            (m, k, n),
            a.as_ptr(),
            a_strides,
            b.as_ptr(),
            b_strides,
            Output(c.as_mut_ptr()),
            n,
            beta,
        )
    };
}

/// One sgemm call writing `c = a · b + beta · c` with row stride `ldc`.
///
/// # Safety
/// `a`, `b` and `c` must be valid for every index the dimensions and strides reach.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block(
    (m, k, n): (usize, usize, usize),
    a: *const f32,
    (rsa, csa): (usize, usize),
    b: *const f32,
    (rsb, csb): (usize, usize),
    c: Output,
    ldc: usize,
    beta: f32,
) {
    matrixmultiply::sgemm(
        m,
        k,
        n,
        1.0,
        a,
        rsa as isize,
        csa as isize,
        b,
        rsb as isize,
        csb as isize,
        beta,
        c.0,
        ldc as isize,
        1,
    );
}
