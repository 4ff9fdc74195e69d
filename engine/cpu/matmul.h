// The CPU backend's matrix product, batch-invariant: every output element is computed by the
// same sequence of float operations whatever the number of rows and wherever its row sits, so
// a sequence's logits (and the tokens seeded sampling draws from them) do not depend on what it
// is batched with. BLAS libraries do not promise that: OpenBLAS computes a row differently
// alone (GEMV) than in a batch, and by its position in a batch (tile edges, thread splits).
#pragma once

#include <cstdint>

namespace lp {

// out[i, j] = sum_k x[i, k] * w[j, k] (+ bias[j] when given), for x [n, k], w [m, k], out [n, m],
// all row-major float32. Threaded with OpenMP over blocks of output columns.
void MatMulF32(const float* x, int64_t n, int64_t k, const float* w, int64_t m, const float* bias,
               float* out);

}  // namespace lp
