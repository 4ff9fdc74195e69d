// 4-bit linear weights (GPTQ, AWQ): the layouts Hugging Face checkpoints store them in, and the
// one layout every backend receives them in (Int4Matrix). Both formats quantize W[out, in] in
// groups of `group_size` inputs, one f16 scale and one 4-bit zero per (group, output):
//
//   W[o, i] = scale[g(i), o] * (q[i, o] - zero[g(i), o])
//
// GPTQ: `qweight` int32 [in / 8, out] (input 8r + k in bits 4k of row r), `qzeros` int32
// [groups, out / 8] (output 8c + k in bits 4k), `scales` [groups, out], `g_idx` int32 [in]
// (g(i); not monotonic with act order), zero = stored + 1 in the default `gptq` format, as
// stored in `gptq_v2`. AWQ (gemm): `qweight` int32 [in, out / 8] and `qzeros` [groups, out / 8],
// the eight outputs of a word in the order 0, 2, 4, 6, 1, 3, 5, 7; g(i) = i / group_size; zeros
// as stored.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/model_config.h"
#include "common/model_layout.h"
#include "common/safetensors.h"

namespace lp {

class Checkpoint;

// A 4-bit weight W[rows = out, cols = in] in layerpipe's layout: row-major codes, eight columns a
// word, and a scale and zero per (row, group) of `group_size` consecutive columns. With GPTQ act
// order the columns are sorted by group once at load, and `perm` says which input each column
// multiplies, so a product never gathers scales per element.
struct Int4Matrix {
  int64_t rows = 0;
  int64_t cols = 0;              // a multiple of 8
  int64_t group_size = 0;        // divides cols
  std::vector<uint32_t> codes;   // [rows, cols / 8]: column 8w + k of word w in bits 4k .. 4k + 3
  std::vector<uint16_t> scales;  // f16 bits, [rows, groups]
  std::vector<uint8_t> zeros;    // [rows, groups], 0 .. 16 (a v1 GPTQ stored 15 means 16)
  std::vector<int32_t> perm;     // empty (identity), or [cols]: column j multiplies input perm[j]

  int64_t groups() const { return cols / group_size; }
  int Code(int64_t r, int64_t c) const {
    return int(codes[size_t(r * (cols / 8) + c / 8)] >> (4 * (c % 8))) & 15;
  }
};

// The checkpoint tensors of a packed linear under `q`, in the order UnpackInt4 takes them.
std::vector<ExpectedTensor> Int4Tensors(const QuantConfig& q, const LinearSpec& linear);

// Decodes a linear's packed tensors (views in the order of Int4Tensors, shapes already checked)
// into an Int4Matrix; checks g_idx (range, equal groups). Errors name the tensor.
absl::StatusOr<Int4Matrix> UnpackInt4(const QuantConfig& q, const LinearSpec& linear,
                                      std::span<const TensorView> parts);

// The column order (Int4Matrix::perm) of a GPTQ linear's `g_idx`: empty when g_idx[i] is
// i / group_size, else the inputs stably sorted by group. Refuses an entry outside the groups
// or a group of other than group_size inputs.
absl::StatusOr<std::vector<int32_t>> GroupOrder(const QuantConfig& q, const LinearSpec& linear,
                                                const TensorView& g_idx);

// Reads and decodes a packed linear of `ckpt`.
absl::StatusOr<Int4Matrix> ReadInt4(Checkpoint& ckpt, const LinearSpec& linear);

// The dense weight [rows, cols] in float32, in the inputs' order (perm undone); exact: an f16
// scale times a small integer is a float32.
std::vector<float> DequantizeInt4(const Int4Matrix& m);

}  // namespace lp
