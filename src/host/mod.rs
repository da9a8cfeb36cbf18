//! Host compute shared by the CPU reference of every op (`src/ops/`): the matrix products and the helper
//! threads that split them. Backend-free, so the ops and the CPU backend both build on it.

pub(crate) mod gemm;
pub(crate) mod pool;
