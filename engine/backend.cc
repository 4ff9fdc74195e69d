// The Backend interface's defaults: the attention shapes every backend runs, and packed 4-bit
// weights dequantized once at load; the row buckets of matrix products.
#include "engine/backend.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace lp {

int64_t RowBucket(int64_t n) {
  int64_t step = 16;
  while (step * 16 < n) step *= 2;
  return (n + step - 1) / step * step;
}

absl::Status Backend::CheckAttention(const AttentionParams& p) const {
  if (p.num_heads <= 0 || p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name(), " backend: ", p.num_heads, " attention heads over ", p.num_kv_heads,
                     " KV heads; the heads must be a positive multiple of the KV heads"));
  }
  if (p.head_dim <= 0 || p.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name(), " backend: head_dim ", p.head_dim,
                                                   "; RoPE needs a positive even head_dim"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Linear> Backend::LoadInt4(const Int4Matrix& w) {
  const std::vector<float> dense = DequantizeInt4(w);
  TensorInfo info;
  info.dtype = DType::kF32;
  info.shape = {w.rows, w.cols};
  info.end = dense.size() * sizeof(float);
  const TensorView view{&info, reinterpret_cast<const uint8_t*>(dense.data())};
  return Linear{LoadWeight(view, w.rows, w.cols), nullptr, w.rows, w.cols};
}

void Backend::MatMulInt4(const Tensor&, const Linear&, const Tensor*, Tensor&) {
  // LoadInt4 above never makes a packed Linear: reaching this is a programming error.
  std::fprintf(stderr, "backend %s: MatMulInt4 without packed weights\n", name().c_str());
  std::abort();
}

}  // namespace lp
