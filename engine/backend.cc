// The Backend interface's defaults for packed 4-bit weights: dequantize once at load.
#include "engine/backend.h"

#include <cstdio>
#include <cstdlib>

namespace lp {

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
