// Dense-layer matrix products on row-major f32 matrices.
//   matmul_bias_act: product[m, n] = act(lhs[m, k] · rhs[k, n] + bias[n])   (forward)
//   matmul_nt:       product[m, n] = lhs[m, k] · rhs[n, k]ᵀ                 (dX = dY · Wᵀ)
//   matmul_tn:       product[m, n] = lhs[k, m]ᵀ · rhs[k, n]                 (dW = Xᵀ · dY)
//   matmul_bias_act_tiled: matmul_bias_act through workgroup memory (at the end of this file)
//   matmul_nt_k4:    matmul_nt with both operands read as vec4s along k (k a multiple of 4)
// One invocation computes a BLOCK × BLOCK block of outputs in registers: per step of the sum it loads BLOCK
// values of lhs and BLOCK of rhs for BLOCK² multiply-adds, instead of 2 loads per multiply-add (software
// adapters such as llvmpipe are bound by loads). Edge blocks read clamped indices and write only what lies
// inside the output. Shapes come in `dims`, so one pipeline serves every layer. Block columns past 65535
// workgroups spill into the z dimension.
// Long sums run as several dispatches, each over a window [begin, begin + k) of the summed dimension (full
// length `stride`): llvmpipe ends an invocation after 65535 loop iterations. A window with FLAG_ACCUMULATE
// continues the sum already in `product` (so the order is that of one long sum); FLAG_LAST applies the
// epilogue (bias and activation) and is set on the last window.
// Operands larger than one storage binding are bound in windows too: matmul_bias_act binds rows
// [rhs_begin, rhs_begin + k) of rhs; matmul_nt binds rows of rhs for output columns
// [window_offset, window_offset + n) of an output `window_stride` wide; matmul_tn binds output rows for
// lhs columns [window_offset, window_offset + m) of an lhs `window_stride` wide.

// Invocations per workgroup along output columns and rows: pipeline constants, so that the wgpu backend can
// build each entry point in the shape that runs fastest on its adapter (src/gpu/tune.rs). Every shape sums
// in the same order.
override TILE_X: u32 = 8u;
override TILE_Y: u32 = 8u;
const BLOCK: u32 = 4u; // outputs per invocation along each dimension

@group(0) @binding(1) var<storage, read> lhs: array<f32>;
@group(0) @binding(2) var<storage, read> rhs: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> product: array<f32>;
// The rhs region again, as vec4s: when n is a multiple of 4, a row's 4 block columns are one aligned load.
@group(0) @binding(6) var<storage, read> rhs4: array<vec4<f32>>;
// The lhs region as vec4s: along k for matmul_bias_act and matmul_nt_k4, along m for matmul_tn.
@group(0) @binding(7) var<storage, read> lhs4: array<vec4<f32>>;

// First output column of this invocation's block.
fn first_column(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return (gid.x + gid.z * groups.x * TILE_X) * BLOCK;
}

// Row (or column) `first + r`, clamped into [0, limit) so edge blocks read valid memory.
fn clamped(first: u32, r: u32, limit: u32) -> u32 {
    return min(first + r, limit - 1u);
}

// The block's sums so far: what earlier windows left in `product` (row stride `out_stride`, first column
// `out_offset`), or zeros for the first window.
fn start_block(row0: u32, col0: u32, out_stride: u32, out_offset: u32) -> array<vec4<f32>, 4> {
    var acc: array<vec4<f32>, 4>;
    if (dims.flags & FLAG_ACCUMULATE) == 0u {
        return acc;
    }
    for (var r = 0u; r < BLOCK; r++) {
        for (var c = 0u; c < BLOCK; c++) {
            if row0 + r < dims.m && col0 + c < dims.n {
                acc[r][c] = product[(row0 + r) * out_stride + out_offset + col0 + c];
            }
        }
    }
    return acc;
}

// Writes the block's outputs that lie inside the output.
fn store_block(acc: array<vec4<f32>, 4>, row0: u32, col0: u32, out_stride: u32, out_offset: u32) {
    for (var r = 0u; r < BLOCK; r++) {
        for (var c = 0u; c < BLOCK; c++) {
            if row0 + r < dims.m && col0 + c < dims.n {
                product[(row0 + r) * out_stride + out_offset + col0 + c] = acc[r][c];
            }
        }
    }
}

// The same formulas, and the same `x > 0` test at the ReLU kink, as Activation::apply in src/activation.rs.
@compute @workgroup_size(TILE_X, TILE_Y)
fn matmul_bias_act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row0 = gid.y * BLOCK;
    let col0 = first_column(gid, groups);
    if row0 >= dims.m || col0 >= dims.n {
        return;
    }
    var acc = start_block(row0, col0, dims.n, 0u);
    let a0 = clamped(row0, 0u, dims.m) * dims.stride;
    let a1 = clamped(row0, 1u, dims.m) * dims.stride;
    let a2 = clamped(row0, 2u, dims.m) * dims.stride;
    let a3 = clamped(row0, 3u, dims.m) * dims.stride;
    let c = vec4<u32>(clamped(col0, 0u, dims.n), clamped(col0, 1u, dims.n), clamped(col0, 2u, dims.n), clamped(col0, 3u, dims.n));
    let quads = dims.stride % 4u == 0u && dims.begin % 4u == 0u && dims.k % 4u == 0u;
    if dims.n % BLOCK == 0u && quads {
        // Both operands as vec4s: 4 summed indices of each lhs row in one load, the same order of sums.
        let q0 = a0 / 4u;
        let q1 = a1 / 4u;
        let q2 = a2 / 4u;
        let q3 = a3 / 4u;
        for (var q = dims.begin / 4u; q < (dims.begin + dims.k) / 4u; q++) {
            let r0 = lhs4[q0 + q];
            let r1 = lhs4[q1 + q];
            let r2 = lhs4[q2 + q];
            let r3 = lhs4[q3 + q];
            let row = (q * 4u - dims.rhs_begin) * dims.n + col0;
            let n4 = dims.n / BLOCK;
            let first = row / BLOCK;
            add_outer(&acc, vec4<f32>(r0.x, r1.x, r2.x, r3.x), rhs4[first]);
            add_outer(&acc, vec4<f32>(r0.y, r1.y, r2.y, r3.y), rhs4[first + n4]);
            add_outer(&acc, vec4<f32>(r0.z, r1.z, r2.z, r3.z), rhs4[first + 2u * n4]);
            add_outer(&acc, vec4<f32>(r0.w, r1.w, r2.w, r3.w), rhs4[first + 3u * n4]);
        }
    } else if dims.n % BLOCK == 0u {
        for (var p = dims.begin; p < dims.begin + dims.k; p++) {
            let b = rhs4[((p - dims.rhs_begin) * dims.n + col0) / BLOCK];
            acc[0] += lhs[a0 + p] * b;
            acc[1] += lhs[a1 + p] * b;
            acc[2] += lhs[a2 + p] * b;
            acc[3] += lhs[a3 + p] * b;
        }
    } else {
        for (var p = dims.begin; p < dims.begin + dims.k; p++) {
            let b_row = (p - dims.rhs_begin) * dims.n;
            let b = vec4<f32>(rhs[b_row + c.x], rhs[b_row + c.y], rhs[b_row + c.z], rhs[b_row + c.w]);
            acc[0] += lhs[a0 + p] * b;
            acc[1] += lhs[a1 + p] * b;
            acc[2] += lhs[a2 + p] * b;
            acc[3] += lhs[a3 + p] * b;
        }
    }
    if (dims.flags & FLAG_LAST) != 0u {
        let b = vec4<f32>(bias[c.x], bias[c.y], bias[c.z], bias[c.w]);
        for (var r = 0u; r < BLOCK; r++) {
            let z = acc[r] + b;
            acc[r] = vec4<f32>(activate(z.x), activate(z.y), activate(z.z), activate(z.w));
        }
    }
    store_block(acc, row0, col0, dims.n, 0u);
}

@compute @workgroup_size(TILE_X, TILE_Y)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row0 = gid.y * BLOCK;
    let col0 = first_column(gid, groups);
    if row0 >= dims.m || col0 >= dims.n {
        return;
    }
    var acc = start_block(row0, col0, dims.window_stride, dims.window_offset);
    let a0 = clamped(row0, 0u, dims.m) * dims.stride;
    let a1 = clamped(row0, 1u, dims.m) * dims.stride;
    let a2 = clamped(row0, 2u, dims.m) * dims.stride;
    let a3 = clamped(row0, 3u, dims.m) * dims.stride;
    let b0 = clamped(col0, 0u, dims.n) * dims.stride;
    let b1 = clamped(col0, 1u, dims.n) * dims.stride;
    let b2 = clamped(col0, 2u, dims.n) * dims.stride;
    let b3 = clamped(col0, 3u, dims.n) * dims.stride;
    for (var p = dims.begin; p < dims.begin + dims.k; p++) {
        let b = vec4<f32>(rhs[b0 + p], rhs[b1 + p], rhs[b2 + p], rhs[b3 + p]);
        acc[0] += lhs[a0 + p] * b;
        acc[1] += lhs[a1 + p] * b;
        acc[2] += lhs[a2 + p] * b;
        acc[3] += lhs[a3 + p] * b;
    }
    store_block(acc, row0, col0, dims.window_stride, dims.window_offset);
}

// One step of the sum for a block: `rows` holds lhs at the block's 4 rows, `columns` rhs at its 4
// columns, both at the same summed index.
fn add_outer(acc: ptr<function, array<vec4<f32>, 4>>, rows: vec4<f32>, columns: vec4<f32>) {
    (*acc)[0] += rows.x * columns;
    (*acc)[1] += rows.y * columns;
    (*acc)[2] += rows.z * columns;
    (*acc)[3] += rows.w * columns;
}

// matmul_nt reading 4 consecutive summed indices of each row of lhs and rhs with one vec4 load each, a
// quarter of matmul_nt's loads. The sum still runs one index at a time in order, so the values are
// matmul_nt's bit for bit. Needs k, stride and the window's begin to be multiples of 4.
@compute @workgroup_size(TILE_X, TILE_Y)
fn matmul_nt_k4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row0 = gid.y * BLOCK;
    let col0 = first_column(gid, groups);
    if row0 >= dims.m || col0 >= dims.n {
        return;
    }
    var acc = start_block(row0, col0, dims.window_stride, dims.window_offset);
    let quads = dims.stride / 4u;
    let a0 = clamped(row0, 0u, dims.m) * quads;
    let a1 = clamped(row0, 1u, dims.m) * quads;
    let a2 = clamped(row0, 2u, dims.m) * quads;
    let a3 = clamped(row0, 3u, dims.m) * quads;
    let b0 = clamped(col0, 0u, dims.n) * quads;
    let b1 = clamped(col0, 1u, dims.n) * quads;
    let b2 = clamped(col0, 2u, dims.n) * quads;
    let b3 = clamped(col0, 3u, dims.n) * quads;
    for (var q = dims.begin / 4u; q < (dims.begin + dims.k) / 4u; q++) {
        let r0 = lhs4[a0 + q];
        let r1 = lhs4[a1 + q];
        let r2 = lhs4[a2 + q];
        let r3 = lhs4[a3 + q];
        let c0 = rhs4[b0 + q];
        let c1 = rhs4[b1 + q];
        let c2 = rhs4[b2 + q];
        let c3 = rhs4[b3 + q];
        add_outer(&acc, vec4<f32>(r0.x, r1.x, r2.x, r3.x), vec4<f32>(c0.x, c1.x, c2.x, c3.x));
        add_outer(&acc, vec4<f32>(r0.y, r1.y, r2.y, r3.y), vec4<f32>(c0.y, c1.y, c2.y, c3.y));
        add_outer(&acc, vec4<f32>(r0.z, r1.z, r2.z, r3.z), vec4<f32>(c0.z, c1.z, c2.z, c3.z));
        add_outer(&acc, vec4<f32>(r0.w, r1.w, r2.w, r3.w), vec4<f32>(c0.w, c1.w, c2.w, c3.w));
    }
    store_block(acc, row0, col0, dims.window_stride, dims.window_offset);
}

@compute @workgroup_size(TILE_X, TILE_Y)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row0 = gid.y * BLOCK;
    let col0 = first_column(gid, groups);
    if row0 >= dims.m || col0 >= dims.n {
        return;
    }
    var acc = start_block(row0, col0, dims.n, 0u);
    let r = vec4<u32>(clamped(row0, 0u, dims.m), clamped(row0, 1u, dims.m), clamped(row0, 2u, dims.m), clamped(row0, 3u, dims.m)) + dims.window_offset;
    let c = vec4<u32>(clamped(col0, 0u, dims.n), clamped(col0, 1u, dims.n), clamped(col0, 2u, dims.n), clamped(col0, 3u, dims.n));
    let vector_rhs = dims.n % BLOCK == 0u;
    // The block's 4 lhs values at one summed index are adjacent: one vec4 load when every block is whole
    // and aligned.
    let vector_lhs = vector_rhs && dims.m % BLOCK == 0u && dims.window_stride % 4u == 0u && dims.window_offset % 4u == 0u;
    if vector_lhs {
        for (var p = dims.begin; p < dims.begin + dims.k; p++) {
            add_outer(&acc, lhs4[(p * dims.window_stride + r.x) / 4u], rhs4[(p * dims.n + col0) / BLOCK]);
        }
    } else {
        for (var p = dims.begin; p < dims.begin + dims.k; p++) {
            let a_row = p * dims.window_stride;
            let b_row = p * dims.n;
            var b: vec4<f32>;
            if vector_rhs {
                b = rhs4[(b_row + col0) / BLOCK];
            } else {
                b = vec4<f32>(rhs[b_row + c.x], rhs[b_row + c.y], rhs[b_row + c.z], rhs[b_row + c.w]);
            }
            acc[0] += lhs[a_row + r.x] * b;
            acc[1] += lhs[a_row + r.y] * b;
            acc[2] += lhs[a_row + r.z] * b;
            acc[3] += lhs[a_row + r.w] * b;
        }
    }
    store_block(acc, row0, col0, dims.n, 0u);
}

// matmul_bias_act_tiled: the forward product through workgroup memory, for hardware GPUs, where a
// workgroup's invocations share what they load: 16 × 16 invocations compute a 64 × 64 tile of the
// product, each a 4 × 4 block, stepping through the sum TILED_K indices at a time. Per step each
// invocation loads 4 values of lhs and 4 of rhs into the shared tiles (zeros past the edges), then every
// invocation reads its rows and columns from there. Each output still sums its products in order of the
// summed index, one at a time, as matmul_bias_act does.
const TILED_K: u32 = 16u;
const TILED_EDGE: u32 = 64u; // rows and columns of the output tile: 16 invocations × BLOCK

var<workgroup> lhs_tile: array<f32, 1024>; // [TILED_EDGE rows, TILED_K]
var<workgroup> rhs_tile: array<f32, 1024>; // [TILED_K, TILED_EDGE columns]

@compute @workgroup_size(16, 16)
fn matmul_bias_act_tiled(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    // Tile columns past 65535 workgroups spill into z, as first_column does.
    let tile_col = (wid.x + wid.z * groups.x) * TILED_EDGE;
    let tile_row = wid.y * TILED_EDGE;
    let row0 = tile_row + lid.y * BLOCK;
    let col0 = tile_col + lid.x * BLOCK;
    // Every invocation takes part in loading and in the barriers, inside the output or not.
    let inside = row0 < dims.m && col0 < dims.n;
    var acc: array<vec4<f32>, 4>;
    if inside {
        acc = start_block(row0, col0, dims.n, 0u);
    }
    let flat = lid.y * 16u + lid.x;
    let end = dims.begin + dims.k;
    for (var t = dims.begin; t < end; t += TILED_K) {
        for (var i = 0u; i < 4u; i++) {
            let e = flat * 4u + i;
            // lhs_tile[r, kk] = lhs[tile_row + r, t + kk]
            let r = e / TILED_K;
            let kk = e % TILED_K;
            let row = tile_row + r;
            let p = t + kk;
            let a = lhs[min(row, dims.m - 1u) * dims.stride + min(p, end - 1u)];
            lhs_tile[e] = select(0.0, a, row < dims.m && p < end);
            // rhs_tile[kk, c] = rhs[t + kk, tile_col + c]
            let bk = e / TILED_EDGE;
            let c = e % TILED_EDGE;
            let col = tile_col + c;
            let q = t + bk;
            let b = rhs[(min(q, end - 1u) - dims.rhs_begin) * dims.n + min(col, dims.n - 1u)];
            rhs_tile[e] = select(0.0, b, col < dims.n && q < end);
        }
        workgroupBarrier();
        let steps = min(TILED_K, end - t);
        for (var kk = 0u; kk < steps; kk++) {
            let base = kk * TILED_EDGE + lid.x * BLOCK;
            let b = vec4<f32>(rhs_tile[base], rhs_tile[base + 1u], rhs_tile[base + 2u], rhs_tile[base + 3u]);
            let a = lid.y * BLOCK * TILED_K + kk;
            acc[0] += lhs_tile[a] * b;
            acc[1] += lhs_tile[a + TILED_K] * b;
            acc[2] += lhs_tile[a + 2u * TILED_K] * b;
            acc[3] += lhs_tile[a + 3u * TILED_K] * b;
        }
        workgroupBarrier();
    }
    if !inside {
        return;
    }
    if (dims.flags & FLAG_LAST) != 0u {
        let c = vec4<u32>(clamped(col0, 0u, dims.n), clamped(col0, 1u, dims.n), clamped(col0, 2u, dims.n), clamped(col0, 3u, dims.n));
        let b = vec4<f32>(bias[c.x], bias[c.y], bias[c.z], bias[c.w]);
        for (var r = 0u; r < BLOCK; r++) {
            let z = acc[r] + b;
            acc[r] = vec4<f32>(activate(z.x), activate(z.y), activate(z.z), activate(z.w));
        }
    }
    store_block(acc, row0, col0, dims.n, 0u);
}
