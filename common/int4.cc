// GPTQ / AWQ checkpoint layouts <-> Int4Matrix (see int4.h).
#include "common/int4.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/status.h"

namespace lp {
namespace {

// AWQ's order of the eight outputs in a word: bits 4k hold output 8c + kAwqOrder[k].
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

template <typename T>
std::vector<T> Copy(const TensorView& v) {
  std::vector<T> out(v.info->num_bytes() / sizeof(T));
  std::memcpy(out.data(), v.data, out.size() * sizeof(T));
  return out;
}

int Nibble(uint32_t word, int k) { return int(word >> (4 * k)) & 15; }

}  // namespace

absl::StatusOr<std::vector<int32_t>> GroupOrder(const QuantConfig& q, const LinearSpec& l,
                                                const TensorView& g_idx_view) {
  const std::string& name = l.name;
  const std::vector<int32_t> g_idx = Copy<int32_t>(g_idx_view);
  const int64_t in = int64_t(g_idx.size());
  const int64_t group_size = q.GroupSize(l.in), groups = l.in / group_size;
  std::vector<int64_t> count(size_t(groups), 0);
  bool identity = true;
  for (int64_t i = 0; i < in; ++i) {
    const int32_t g = g_idx[size_t(i)];
    if (g < 0 || g >= groups) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, ".g_idx': entry ", i, " is ",
                                                     g, ", outside the ", groups, " groups"));
    }
    ++count[size_t(g)];
    identity = identity && g == i / group_size;
  }
  if (identity) return std::vector<int32_t>{};
  for (int64_t g = 0; g < groups; ++g) {
    if (count[size_t(g)] != group_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, ".g_idx': group ", g, " holds ", count[size_t(g)],
                       " inputs, but quantization_config.group_size says ", group_size));
    }
  }
  std::vector<int32_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(),
                   [&](int32_t a, int32_t b) { return g_idx[size_t(a)] < g_idx[size_t(b)]; });
  return perm;
}

std::vector<ExpectedTensor> Int4Tensors(const QuantConfig& q, const LinearSpec& l) {
  const int64_t groups = l.in / q.GroupSize(l.in);
  const int64_t params = l.out * l.in;
  std::vector<ExpectedTensor> t;
  if (q.method == QuantMethod::kAwq) {
    t.push_back({l.name + ".qweight", {l.in, l.out / 8}, DType::kI32, params});
  } else {
    t.push_back({l.name + ".qweight", {l.in / 8, l.out}, DType::kI32, params});
  }
  t.push_back({l.name + ".qzeros", {groups, l.out / 8}, DType::kI32, 0});
  t.push_back({l.name + ".scales", {groups, l.out}, DType::kF16, 0});
  if (q.method == QuantMethod::kGptq) t.push_back({l.name + ".g_idx", {l.in}, DType::kI32, 0});
  return t;
}

absl::StatusOr<Int4Matrix> UnpackInt4(const QuantConfig& q, const LinearSpec& l,
                                      std::span<const TensorView> parts) {
  const bool gptq = q.method == QuantMethod::kGptq;
  if (parts.size() != (gptq ? 4u : 3u)) {
    return absl::InvalidArgumentError(absl::StrCat(l.name, ": wrong number of packed tensors"));
  }
  Int4Matrix m;
  m.rows = l.out;
  m.cols = l.in;
  m.group_size = q.GroupSize(l.in);
  const int64_t groups = m.groups(), out = l.out, in = l.in, words = in / 8;
  const auto qweight = Copy<uint32_t>(parts[0]);
  const auto qzeros = Copy<uint32_t>(parts[1]);
  const auto scales = Copy<uint16_t>(parts[2]);
  m.codes.assign(size_t(out * words), 0);
  m.scales.resize(size_t(out * groups));
  m.zeros.resize(size_t(out * groups));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      const uint32_t zword = qzeros[size_t(g * (out / 8) + o / 8)];
      int zero;
      if (gptq) {
        zero = Nibble(zword, int(o % 8)) + (q.gptq_v2 ? 0 : 1);
      } else {
        zero = Nibble(zword, int(std::find(kAwqOrder, kAwqOrder + 8, o % 8) - kAwqOrder));
      }
      m.zeros[size_t(o * groups + g)] = uint8_t(zero);
      m.scales[size_t(o * groups + g)] = scales[size_t(g * out + o)];
    }
  }
  if (gptq) {
    ASSIGN_OR_RETURN(m.perm, GroupOrder(q, l, parts[3]));
  }
  if (gptq && m.perm.empty()) {
    // Row r of qweight holds inputs 8r .. 8r + 7 of each output: our word, transposed (in
    // tiles, so that both sides stay in cache).
    constexpr int64_t kTile = 64;
    for (int64_t r0 = 0; r0 < words; r0 += kTile) {
      for (int64_t o0 = 0; o0 < out; o0 += kTile) {
        for (int64_t r = r0; r < std::min(words, r0 + kTile); ++r) {
          for (int64_t o = o0; o < std::min(out, o0 + kTile); ++o) {
            m.codes[size_t(o * words + r)] = qweight[size_t(r * out + o)];
          }
        }
      }
    }
  } else if (gptq) {
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t j = 0; j < in; ++j) {
        const int64_t i = m.perm[size_t(j)];
        const int code = Nibble(qweight[size_t((i / 8) * out + o)], int(i % 8));
        m.codes[size_t(o * words + j / 8)] |= uint32_t(code) << (4 * (j % 8));
      }
    }
  } else {
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t c = 0; c < out / 8; ++c) {
        const uint32_t word = qweight[size_t(i * (out / 8) + c)];
        for (int k = 0; k < 8; ++k) {
          const int64_t o = 8 * c + kAwqOrder[k];
          m.codes[size_t(o * words + i / 8)] |= uint32_t(Nibble(word, k)) << (4 * (i % 8));
        }
      }
    }
  }
  return m;
}

absl::StatusOr<Int4Matrix> ReadInt4(Checkpoint& ckpt, const LinearSpec& linear) {
  std::vector<TensorView> parts;
  for (const ExpectedTensor& t : Int4Tensors(ckpt.config().quant, linear)) {
    ASSIGN_OR_RETURN(TensorView view, ckpt.Get(t));
    parts.push_back(view);
  }
  auto m = UnpackInt4(ckpt.config().quant, linear, parts);
  if (!m.ok()) {
    return absl::Status(m.status().code(), absl::StrCat(ckpt.dir(), ": ", m.status().message()));
  }
  return m;
}

std::vector<float> DequantizeInt4(const Int4Matrix& m) {
  std::vector<float> w(size_t(m.rows * m.cols));
  const int64_t groups = m.groups();
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t j = 0; j < m.cols; ++j) {
      const size_t g = size_t(r * groups + j / m.group_size);
      const float v = F16ToF32(m.scales[g]) * float(m.Code(r, j) - int(m.zeros[g]));
      const int64_t i = m.perm.empty() ? j : m.perm[size_t(j)];
      w[size_t(r * m.cols + i)] = v;
    }
  }
  return w;
}

}  // namespace lp
