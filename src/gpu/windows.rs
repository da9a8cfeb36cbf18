//! How one op becomes several dispatches: sums longer than [`REDUCTION_WINDOW`] run over windows of the
//! summed dimension, each continuing the last one's sum (llvmpipe ends an invocation after 65535 loop
//! iterations), and operands larger than one storage binding are bound a window at a time.

use super::kernels::{flat_groups, launch, tiles, vec4_view, Launch, FLAG_ACCUMULATE, FLAG_LAST};
use crate::backend::{Op, Region, REDUCTION_WINDOW};
use crate::network::PARAM_ALIGN;

/// `n` rounded down to a multiple of [`PARAM_ALIGN`] (so window offsets stay bindable), at least that much.
fn aligned(n: usize) -> usize {
    (n / PARAM_ALIGN * PARAM_ALIGN).max(PARAM_ALIGN)
}

/// `launch` repeated over windows `[begin, begin + len)` of a sum of `full` terms, `per` at a time.
fn sum_windows(
    launch: &Launch,
    full: usize,
    per: usize,
    shape: impl Fn(&mut Launch, usize, usize),
) -> Vec<Launch> {
    if full == 0 {
        return vec![launch.clone()];
    }
    (0..full)
        .step_by(per)
        .map(|begin| {
            let len = per.min(full - begin);
            let mut window = launch.clone();
            window.dims.begin = begin as u32;
            window.dims.flags = if begin > 0 { FLAG_ACCUMULATE } else { 0 };
            if begin + len == full {
                window.dims.flags |= FLAG_LAST;
            }
            shape(&mut window, begin, len);
            window
        })
        .collect()
}

/// Replaces the region bound at `binding`, and its vec4 view (binding 6) when `binding` is the rhs (2).
fn rebind(launch: &mut Launch, binding: u32, region: Region) {
    for entry in &mut launch.bindings {
        if entry.0 == binding {
            entry.1 = region;
        } else if binding == 2 && entry.0 == 6 {
            entry.1 = vec4_view(region);
        }
    }
}

/// The dispatches of `op` when one storage binding holds at most `max_binding` floats.
pub(crate) fn launches(op: &Op, max_binding: usize) -> Vec<Launch> {
    let mut base = launch(op);
    base.dims.flags = FLAG_LAST;
    match *op {
        Op::MatmulBiasAct { weights, k, n, .. } => {
            base.dims.stride = k as u32;
            if weights.len <= max_binding {
                return sum_windows(&base, k, REDUCTION_WINDOW, |w, _, len| {
                    w.dims.k = len as u32
                });
            }
            // Weight rows [begin, begin + len) bound one window at a time.
            let per = aligned(max_binding / n.max(1)).min(REDUCTION_WINDOW);
            sum_windows(&base, k, per, |w, begin, len| {
                w.dims.k = len as u32;
                w.dims.rhs_begin = begin as u32;
                rebind(
                    w,
                    2,
                    Region {
                        offset: weights.offset + begin * n,
                        len: len * n,
                        ..weights
                    },
                );
            })
        }
        Op::MatmulNt {
            weights, m, k, n, ..
        } => {
            base.dims.stride = k as u32;
            base.dims.window_stride = n as u32;
            let per_column = if weights.len <= max_binding {
                n
            } else {
                aligned(max_binding / k.max(1))
            };
            (0..n.max(1))
                .step_by(per_column.max(1))
                .flat_map(|first| {
                    let columns = per_column.min(n - first.min(n));
                    let mut block = base.clone();
                    if per_column < n {
                        block.dims.n = columns as u32;
                        block.dims.window_offset = first as u32;
                        block.groups = tiles(m, columns);
                        rebind(
                            &mut block,
                            2,
                            Region {
                                offset: weights.offset + first * k,
                                len: columns * k,
                                ..weights
                            },
                        );
                    }
                    sum_windows(&block, k, REDUCTION_WINDOW, |w, _, len| {
                        w.dims.k = len as u32
                    })
                })
                .collect()
        }
        Op::MatmulTn {
            grad_weights,
            m,
            k,
            n,
            ..
        } => {
            base.dims.window_stride = m as u32;
            let per_row = if grad_weights.len <= max_binding {
                m
            } else {
                aligned(max_binding / n.max(1))
            };
            (0..m.max(1))
                .step_by(per_row.max(1))
                .flat_map(|first| {
                    let rows = per_row.min(m - first.min(m));
                    let mut block = base.clone();
                    if per_row < m {
                        block.dims.m = rows as u32;
                        block.dims.window_offset = first as u32;
                        block.groups = tiles(rows, n);
                        let window = Region {
                            offset: grad_weights.offset + first * n,
                            len: rows * n,
                            ..grad_weights
                        };
                        rebind(&mut block, 4, window);
                    }
                    sum_windows(&block, k, REDUCTION_WINDOW, |w, _, len| {
                        w.dims.k = len as u32
                    })
                })
                .collect()
        }
        Op::BiasGrad { rows, .. } => {
            base.dims.stride = rows as u32;
            sum_windows(&base, rows, REDUCTION_WINDOW, |w, _, len| {
                w.dims.m = len as u32
            })
        }
        Op::LossGrad { cols, loss, .. } => {
            base.dims.stride = cols as u32;
            if loss == crate::loss::Loss::Ce {
                return vec![base];
            }
            sum_windows(&base, cols, REDUCTION_WINDOW, |w, _, len| {
                w.dims.n = len as u32
            })
        }
        Op::SgdUpdate { params, .. }
        | Op::MomentumUpdate { params, .. }
        | Op::AdamUpdate { params, .. }
            if params.len > max_binding =>
        {
            // Elementwise: the same slice of every per-parameter operand; the hyperparameters stay whole.
            let per = aligned(max_binding);
            (0..params.len)
                .step_by(per)
                .map(|first| {
                    let len = per.min(params.len - first);
                    let mut chunk = base.clone();
                    chunk.dims.m = len as u32;
                    chunk.groups = flat_groups(len);
                    for entry in &mut chunk.bindings {
                        if entry.0 != 3 {
                            entry.1 = Region {
                                offset: entry.1.offset + first,
                                len,
                                ..entry.1
                            };
                        }
                    }
                    chunk
                })
                .collect()
        }
        _ => vec![base],
    }
}
