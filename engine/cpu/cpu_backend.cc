// The CPU backend (see cpu_backend.h).
#include "engine/cpu/cpu_backend.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/cpu/matmul.h"
#include "engine/sampling.h"

namespace lp {
namespace {

Tensor AllocF32(int64_t rows, int64_t cols) {
  Tensor t;
  const size_t n = size_t(rows * cols);
  auto* p =
      static_cast<float*>(std::aligned_alloc(64, std::max<size_t>(64, (n * 4 + 63) / 64 * 64)));
  if (p == nullptr) std::abort();
  std::memset(p, 0, n * 4);
  t.storage = std::shared_ptr<void>(p, std::free);
  t.data = p;
  t.dtype = DType::kF32;
  t.rows = rows;
  t.cols = cols;
  return t;
}

// K and V per layer as [block][position in the block][kv_head * head_dim] float32.
class CpuKvCache : public KvCache {
 public:
  explicit CpuKvCache(const KvCacheShape& s) : KvCache(s) {
    const size_t per_layer = size_t(s.num_blocks * s.block_tokens * s.num_kv_heads * s.head_dim);
    k_.assign(size_t(s.num_layers) * per_layer, 0.0f);
    v_.assign(size_t(s.num_layers) * per_layer, 0.0f);
  }
  uint64_t bytes() const override { return (k_.size() + v_.size()) * sizeof(float); }

  // Position `pos` of sequence `s`, through its block table.
  float* k(int64_t layer, const SeqChunk& s, int64_t pos) { return &k_[Offset(layer, s, pos)]; }
  float* v(int64_t layer, const SeqChunk& s, int64_t pos) { return &v_[Offset(layer, s, pos)]; }

 private:
  size_t Offset(int64_t layer, const SeqChunk& seq, int64_t pos) const {
    const auto& s = shape_;
    const int64_t block = KvBlockOf(seq, pos / s.block_tokens, s.max_blocks_per_seq);
    return size_t(((layer * s.num_blocks + block) * s.block_tokens + pos % s.block_tokens) *
                  s.num_kv_heads * s.head_dim);
  }
  std::vector<float> k_, v_;
};

void RmsNormRow(const float* x, const float* w, float eps, int64_t n, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
  for (int64_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * scale);
}

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads) : threads_(threads) {}
  std::string name() const override { return "cpu"; }

  Tensor Alloc(int64_t rows, int64_t cols) override { return AllocF32(rows, cols); }

  Tensor LoadWeight(const TensorView& src, int64_t rows, int64_t cols) override {
    Tensor t = AllocF32(rows, cols);
    ConvertToF32(src.info->dtype, src.data, t.as<float>(), size_t(rows * cols));
    return t;
  }

  std::unique_ptr<KvCache> CreateKvCache(const KvCacheShape& shape) override {
    return std::make_unique<CpuKvCache>(shape);
  }

  void Upload(std::span<const float> host, Tensor& dst) override {
    assert(int64_t(host.size()) == dst.numel());
    std::memcpy(dst.data, host.data(), host.size_bytes());
  }
  void Download(const Tensor& src, std::span<float> host) override {
    assert(int64_t(host.size()) == src.numel());
    std::memcpy(host.data(), src.data, host.size_bytes());
  }

  void BeginStep(const StepLayout& layout) override {
    // OpenMP's thread count is per calling thread, and steps run on gRPC's threads.
    if (threads_ > 0) omp_set_num_threads(threads_);
    layout_ = layout;
    positions_.clear();
    for (const auto& s : layout.seqs) {
      for (int32_t i = 0; i < s.n_tokens; ++i) positions_.push_back(s.start_pos + i);
    }
  }

  void Embed(const Tensor& table, std::span<const int32_t> ids, Tensor& out) override {
    const int64_t h = table.cols;
    for (size_t i = 0; i < ids.size(); ++i) {
      std::memcpy(out.as<float>() + i * h, table.as<float>() + int64_t(ids[i]) * h, h * 4);
    }
  }

  void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
#pragma omp parallel for if (x.rows > 1)
    for (int64_t r = 0; r < x.rows; ++r) {
      RmsNormRow(x.as<float>() + r * x.cols, w.as<float>(), eps, x.cols,
                 out.as<float>() + r * x.cols);
    }
  }

  void AddRmsNorm(Tensor& residual, const Tensor& x, const Tensor& w, float eps,
                  Tensor& out) override {
    Add(residual, x);
    RmsNorm(residual, w, eps, out);
  }

  void MatMul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override {
    assert(x.cols == w.cols && out.rows == x.rows && out.cols == w.rows);
    MatMulF32(x.as<float>(), x.rows, x.cols, w.as<float>(), w.rows,
              bias != nullptr ? bias->as<float>() : nullptr, out.as<float>());
  }

  void QkNormRope(Tensor& q, Tensor& k, const Tensor* q_norm, const Tensor* k_norm,
                  const AttentionParams& p) override {
    const int64_t hd = p.head_dim, half = hd / 2;
    // inv_freq and angles in float32, as Hugging Face computes them.
    std::vector<float> inv_freq(static_cast<size_t>(half), 0.0f);
    for (int64_t i = 0; i < half; ++i) {
      inv_freq[size_t(i)] = 1.0f / std::pow(float(p.rope_theta), float(2 * i) / float(hd));
    }
    auto apply = [&](Tensor& t, const Tensor* norm, int64_t heads) {
#pragma omp parallel for if (t.rows > 1)
      for (int64_t r = 0; r < t.rows; ++r) {
        const float pos = float(positions_[size_t(r)]);
        for (int64_t h = 0; h < heads; ++h) {
          float* x = t.as<float>() + r * t.cols + h * hd;
          if (norm != nullptr) RmsNormRow(x, norm->as<float>(), p.rms_norm_eps, hd, x);
          for (int64_t i = 0; i < half; ++i) {
            const float angle = inv_freq[size_t(i)] * pos;
            const float c = std::cos(angle), s = std::sin(angle);
            const float a = x[i], b = x[i + half];
            x[i] = a * c - b * s;
            x[i + half] = b * c + a * s;
          }
        }
      }
    };
    apply(q, q_norm, p.num_heads);
    apply(k, k_norm, p.num_kv_heads);
  }

  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, KvCache& cache_base,
                 int64_t layer, const AttentionParams& p, Tensor& out) override {
    auto& cache = static_cast<CpuKvCache&>(cache_base);
    const int64_t hd = p.head_dim, kvd = p.num_kv_heads * hd;
    const int64_t group = p.num_heads / p.num_kv_heads;
    const float scale = 1.0f / std::sqrt(float(hd));
    // Store this step's keys and values first: a token attends to itself.
    int64_t row = 0;
    for (const auto& s : layout_.seqs) {
      for (int32_t i = 0; i < s.n_tokens; ++i, ++row) {
        std::memcpy(cache.k(layer, s, s.start_pos + i), k.as<float>() + row * kvd, kvd * 4);
        std::memcpy(cache.v(layer, s, s.start_pos + i), v.as<float>() + row * kvd, kvd * 4);
      }
    }
    // One work item per (token, head).
    std::vector<std::pair<const SeqChunk*, int64_t>> rows;  // sequence, row of its first token
    row = 0;
    for (const auto& s : layout_.seqs) {
      rows.push_back({&s, row});
      row += s.n_tokens;
    }
    const int64_t total = row;
    // Threads pay off only for prefill-sized work; decode steps stay on this thread.
    int64_t context = 0;
    for (const auto& s : layout_.seqs) context += int64_t(s.n_tokens) * (s.start_pos + s.n_tokens);
    const bool parallel = context * p.num_heads * p.head_dim > (1 << 20);
#pragma omp parallel if (parallel)
    {
      std::vector<float> scores;
#pragma omp for collapse(2) schedule(dynamic, 4)
      for (int64_t r = 0; r < total; ++r) {
        for (int64_t h = 0; h < p.num_heads; ++h) {
          auto it = std::upper_bound(rows.begin(), rows.end(), r,
                                     [](int64_t v, const auto& e) { return v < e.second; }) -
                    1;
          const SeqChunk& s = *it->first;
          const int64_t pos = s.start_pos + (r - it->second);
          const int64_t kv_h = h / group;
          const float* qv = q.as<float>() + r * q.cols + h * hd;
          scores.resize(size_t(pos + 1));
          float max_score = -INFINITY;
          for (int64_t t = 0; t <= pos; ++t) {
            const float* kt = cache.k(layer, s, t) + kv_h * hd;
            float dot = 0.0f;
            for (int64_t d = 0; d < hd; ++d) dot += qv[d] * kt[d];
            scores[size_t(t)] = dot * scale;
            max_score = std::max(max_score, scores[size_t(t)]);
          }
          float sum = 0.0f;
          for (int64_t t = 0; t <= pos; ++t) {
            scores[size_t(t)] = std::exp(scores[size_t(t)] - max_score);
            sum += scores[size_t(t)];
          }
          float* o = out.as<float>() + r * out.cols + h * hd;
          std::fill(o, o + hd, 0.0f);
          for (int64_t t = 0; t <= pos; ++t) {
            const float* vt = cache.v(layer, s, t) + kv_h * hd;
            const float w = scores[size_t(t)] / sum;
            for (int64_t d = 0; d < hd; ++d) o[d] += w * vt[d];
          }
        }
      }
    }
  }

  void SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    const int64_t n = gate.numel();
    const float* g = gate.as<float>();
    const float* u = up.as<float>();
    float* o = out.as<float>();
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }

  void Add(Tensor& x, const Tensor& y) override {
    const int64_t n = x.numel();
    float* a = x.as<float>();
    const float* b = y.as<float>();
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
  }

  void GatherRows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override {
    for (size_t i = 0; i < rows.size(); ++i) {
      std::memcpy(out.as<float>() + i * x.cols, x.as<float>() + int64_t(rows[i]) * x.cols,
                  x.cols * 4);
    }
  }

  void Sample(const Tensor& logits, std::span<const SampleInput> rows,
              std::span<SampleResult> out) override {
    assert(int64_t(rows.size()) == logits.rows && out.size() == rows.size());
#pragma omp parallel for if (logits.rows > 1)
    for (int64_t r = 0; r < logits.rows; ++r) {
      thread_local SampleScratch scratch;  // grows to the vocabulary once per thread
      out[size_t(r)] =
          SampleRow(logits.as<float>() + r * logits.cols, logits.cols, rows[size_t(r)], &scratch);
    }
  }

 private:
  const int threads_;
  StepLayout layout_;
  std::vector<int32_t> positions_;
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

void SetCpuThreads(int threads) { omp_set_num_threads(threads); }

}  // namespace lp
