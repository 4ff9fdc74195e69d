// `layerpipe bench`: decode and prefill speed of the CUDA backend on random-weight models of real
// shape (presets), weights filled on the GPU (file loading is timed by `greedy`, not here); the
// linears of a 4-bit preset (GPTQ / AWQ) kept packed, as the CUDA backend loads them.
// Per batch size: a prompt prefilled, then greedy decode steps with sampling on the GPU; the
// weight bytes one decode step reads, the bandwidth that makes, as a fraction of the card's
// copy bandwidth measured in the same run; and, given hf_baseline.py's output of the same
// device call, the speedup over Hugging Face.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/kv_pages.h"
#include "common/model_layout.h"
#include "common/presets.h"
#include "common/stage_memory.h"
#include "common/weight_sizes.h"
#include "engine/cuda.h"
#include "engine/slice.h"
#include "nlohmann/json.hpp"

namespace lp::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int64_t kLongContextBatch = 16, kLongContextSteps = 32;

struct BenchOptions {
  std::string presets = "qwen3-0.6b,qwen3-8b";
  std::string batches = "1,16,64";
  int64_t prompt = 128, decode = 128;
  int64_t long_context = 0;      // tokens of context for the long-context decode figure (0: none)
  std::string prefill = "2048";  // single-sequence prefill lengths, comma-separated
  int64_t prefill_after = 0;     // positions already in the KV cache before each prefill
  std::string hf_baseline, json_out;
  bool graphs = true, as_json = false, probe = false, batch_invariant = false, chained = true;
  // Each sequence's KV blocks drawn at random from the pool (as a serving cluster's are after
  // a while) instead of a contiguous run per sequence.
  bool scatter_kv = false;
  int64_t kv_block_tokens = kDefaultKvBlockTokens;
  std::vector<int64_t> prefills;  // parsed from `prefill`
};

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

uint64_t NameSeed(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Bytes of the weights one decode step reads, as stored (4-bit linears packed): every layer, the
// final norm and the head (the embedding table when tied); not the embedding lookup.
uint64_t DecodeWeightBytes(const ModelConfig& c) {
  auto sizes = EstimateWeightSizes(c);
  if (!sizes.ok()) Fail(sizes.status());
  uint64_t n = sizes->norm.bytes + (c.tie_word_embeddings ? sizes->embed.bytes : sizes->head.bytes);
  for (const ModuleSize& l : sizes->layers) n += l.bytes;
  return n;
}

// The KV-cache blocks bench needs: the most that one of its runs holds at once (a decode batch
// of prompt + decode positions a sequence, the long-context batch, one sequence of max_context:
// a prefill, whose step has no block table and so takes slot 0's run), not a block run of the
// longest context for every slot.
int64_t BenchKvBlocks(const BenchOptions& o, const SliceLimits& limits) {
  const int64_t bt = o.kv_block_tokens;
  int64_t blocks = std::max(limits.max_batch * KvBlocksFor(o.prompt + o.decode, bt),
                            KvBlocksFor(limits.max_context, bt));
  if (o.long_context > 0) {
    blocks =
        std::max(blocks, kLongContextBatch * KvBlocksFor(o.long_context + kLongContextSteps, bt));
  }
  return blocks;
}

// Fails, before any allocation, when the slice these limits ask for (weights, the KV cache,
// workspace; common/stage_memory.h's model) cannot fit the device's free memory: a clear
// message instead of an abort at the first allocation that fails.
void CheckFits(const std::string& name, const ModelConfig& c, const SliceLimits& limits) {
  const size_t free_bytes = cuda::FreeMemory();
  if (free_bytes == 0) return;  // unknown: let the allocations speak
  auto sizes = EstimateWeightSizes(c);
  if (!sizes.ok()) Fail(sizes.status());
  ClusterLimits cl;
  cl.max_batch = limits.max_batch;
  cl.max_context = limits.max_context;
  cl.max_step_tokens = limits.max_step_tokens;
  cl.kv_block_tokens = limits.kv_block_tokens;
  const StageCost cost(c, *sizes, cl);
  const StageBytes one = cost.Bytes(true, 0, c.num_layers, true, true, false);
  const uint64_t kv = uint64_t(limits.kv_blocks) * cost.KvBlockBytes(true, 0, c.num_layers);
  const uint64_t need = one.weight + kv + one.workspace + one.reserve;
  if (need <= free_bytes) return;
  Fail(absl::ResourceExhaustedError(absl::StrFormat(
      "%s needs about %.1f GiB (weights %.1f, KV cache %.1f, workspace and reserve %.1f) but the "
      "GPU has %.1f GiB free: bench smaller --batches, or a shorter --prefill / --long-context",
      name, double(need) / kGiB, double(one.weight) / kGiB, double(kv) / kGiB,
      double(one.workspace + one.reserve) / kGiB, double(free_bytes) / kGiB)));
}

// Prefills `batch` random prompts (steps of at most max_step_tokens), then runs greedy decode
// steps; the first decode step (which records the CUDA graph) is not timed.
json BenchBatch(Slice& slice, int64_t batch, const BenchOptions& o, std::mt19937& rng) {
  const int64_t vocab = slice.config().vocab_size;
  std::uniform_int_distribution<int32_t> tok(0, int32_t(vocab - 1));
  // KV block tables of the blocks each sequence's positions need: runs of the pool in order, or
  // blocks shuffled over it.
  const KvCacheShape& kv = slice.kv_shape();
  const int64_t per_seq = KvBlocksFor(o.prompt + o.decode, kv.block_tokens);
  std::vector<int32_t> pool(static_cast<size_t>(kv.num_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  if (o.scatter_kv) std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    const auto first = pool.begin() + b * per_seq;
    tables[size_t(b)].assign(first, first + per_seq);
  }
  const auto t0 = Clock::now();
  for (int64_t first = 0; first < batch;) {
    StepLayout layout;
    std::vector<int32_t> ids;
    while (first < batch && int64_t(ids.size()) + o.prompt <= slice.limits().max_step_tokens) {
      layout.seqs.push_back(
          {.slot = int32_t(first), .n_tokens = int32_t(o.prompt), .blocks = tables[size_t(first)]});
      ++first;
      for (int64_t i = 0; i < o.prompt; ++i) ids.push_back(tok(rng));
    }
    if (auto s = slice.Forward(layout, ids, {}, nullptr); !s.ok()) Fail(s);
  }
  slice.backend().Synchronize();
  const double prefill_s = Seconds(t0, Clock::now());
  StepLayout layout;
  std::vector<int32_t> ids(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    layout.seqs.push_back({.slot = int32_t(b),
                           .start_pos = int32_t(o.prompt),
                           .n_tokens = 1,
                           .blocks = tables[size_t(b)]});
    ids[size_t(b)] = tok(rng);
  }
  std::vector<SampleInput> params(static_cast<size_t>(batch));  // greedy
  std::vector<SampleResult> picked;
  Clock::time_point start;
  for (int64_t step = 0; step < o.decode; ++step) {
    if (step == 1) start = Clock::now();
    if (auto s = slice.Forward(layout, ids, {}, nullptr); !s.ok()) Fail(s);
    if (auto s = slice.Sample(params, &picked); !s.ok()) Fail(s);
    for (int64_t b = 0; b < batch; ++b) {
      ids[size_t(b)] = picked[size_t(b)].id;
      layout.seqs[size_t(b)].start_pos += 1;
    }
  }
  const double step_ms = Seconds(start, Clock::now()) * 1e3 / double(o.decode - 1);
  return {{"batch", batch},
          {"prefill_ms", prefill_s * 1e3},
          {"ms_per_step", step_ms},
          {"tokens_per_s", double(batch) * 1e3 / step_ms}};
}

// A prefill of n tokens at position `after` (a prompt whose first `after` tokens are cached:
// they are prefilled once, untimed).
json BenchPrefill(Slice& slice, int64_t n, int64_t after, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> tok(0, int32_t(slice.config().vocab_size - 1));
  std::vector<int32_t> ids(static_cast<size_t>(std::max(n, after)));
  for (auto& id : ids) id = tok(rng);
  if (after > 0) {
    StepLayout cached{{{0, 0, int32_t(after)}}};
    if (auto s = slice.Forward(cached, std::span(ids).first(size_t(after)), {}, nullptr); !s.ok())
      Fail(s);
  }
  ids.resize(size_t(n));
  StepLayout layout{{{0, int32_t(after), int32_t(n)}}};
  std::vector<double> ms;
  for (int rep = 0; rep < 4; ++rep) {
    const auto t0 = Clock::now();
    if (auto s = slice.Forward(layout, ids, {}, nullptr); !s.ok()) Fail(s);
    slice.backend().Synchronize();
    ms.push_back(Seconds(t0, Clock::now()) * 1e3);
  }
  // The first run is reported apart: it pays whatever a length's first prefill loads.
  const double first = ms[0];
  ms.erase(ms.begin());
  std::sort(ms.begin(), ms.end());
  return {{"tokens", n},
          {"after", after},
          {"ms", ms[1]},
          {"first_ms", first},
          {"tokens_per_s", double(n) * 1e3 / ms[1]}};
}

// GB/s of `product(x, i, out)` (x [n, k], out [n, m]; i picks one of four weights in turn, so
// the smaller ones stay out of L2), reading `bytes` of weights a product.
double TimeProducts(Backend& b, int64_t n, int64_t k, int64_t m, double bytes,
                    const std::function<void(const Tensor&, int, Tensor&)>& product) {
  std::vector<Tensor> x;
  for (int i = 0; i < 2; ++i) {
    x.push_back(b.Alloc(n, k));
    std::vector<float> host(static_cast<size_t>(n * k), 0.01f * float(i + 1));
    b.Upload(host, x.back());
  }
  Tensor out = b.Alloc(n, m);
  constexpr int kReps = 40;
  for (int i = 0; i < 8; ++i) product(x[size_t(i % 2)], i, out);  // warm-up
  b.Synchronize();
  const auto t0 = Clock::now();
  for (int i = 0; i < kReps; ++i) product(x[size_t(i % 2)], i, out);
  b.Synchronize();
  return double(kReps) * bytes / Seconds(t0, Clock::now()) / 1e9;
}

// Weight-read bandwidth of single matrix products of the model's shapes: ours (the GEMV, for <= 2
// rows) and the batch-invariant GEMM against cuBLASLt alone.
double TimeMatMul(const CudaBackendOptions& bo, int64_t n, int64_t k, int64_t m) {
  auto b = MakeCudaBackend(0, bo);
  std::vector<Tensor> w;
  for (int i = 0; i < 4; ++i) w.push_back(CudaRandomWeight(*b, m, k, DType::kBF16, 7 + i, false));
  return TimeProducts(*b, n, k, m, double(m * k * 2), [&](const Tensor& x, int i, Tensor& out) {
    b->MatMul(x, w[size_t(i % 4)], nullptr, out);
  });
}

// The same for a 4-bit weight (packed bytes: codes, scales and zeros).
double TimeMatMulInt4(int64_t n, int64_t k, int64_t m, int64_t group) {
  auto b = MakeCudaBackend(0);
  std::vector<Linear> w;
  for (int i = 0; i < 4; ++i) {
    auto l = CudaRandomInt4(*b, m, k, group, 7 + i);
    if (!l.ok()) Fail(l.status());
    w.push_back(*l);
  }
  const double bytes = double(m * k / 2 + m * (k / group) * 4);
  return TimeProducts(*b, n, k, m, bytes, [&](const Tensor& x, int i, Tensor& out) {
    b->MatMulInt4(x, w[size_t(i % 4)], nullptr, out);
  });
}

json ProbeMatMul(const ModelConfig& c) {
  json rows = json::array();
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{c.hidden_size, c.q_dim()},
                                                           {c.hidden_size, c.kv_dim()},
                                                           {c.hidden_size, c.intermediate_size},
                                                           {c.intermediate_size, c.hidden_size},
                                                           {c.hidden_size, c.vocab_size}};
  for (auto [k, m] : shapes) {
    for (int64_t n : {1, 16, 64}) {
      json r = {{"n", n},
                {"k", k},
                {"m", m},
                {"cublas_GBps", TimeMatMul({.gemv = false}, n, k, m)},
                {"invariant_GBps", TimeMatMul({.batch_invariant = true}, n, k, m)}};
      if (n <= 2) r["ours_GBps"] = TimeMatMul({}, n, k, m);
      rows.push_back(r);
    }
    if (c.quant.quantized() && k != c.vocab_size && m != c.vocab_size) {  // the head stays dense
      for (int64_t n : {1, 16, 64}) {
        rows.push_back({{"n", n},
                        {"k", k},
                        {"m", m},
                        {"int4_GBps", TimeMatMulInt4(n, k, m, c.quant.group_size)}});
      }
    }
  }
  return rows;
}

// hf_baseline.py prints one JSON object per line: the device and bandwidth, then one per model.
json LoadBaseline(const std::string& path) {
  json out = json::object();
  if (path.empty()) return out;
  std::ifstream in(path);
  if (!in) Fail(absl::NotFoundError(absl::StrCat(path, ": cannot read")), 2);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (j.contains("model")) out[j["model"].get<std::string>()] = j;
    if (j.contains("bandwidth")) out["_device"] = j;
  }
  return out;
}

json BenchPreset(const std::string& name, const BenchOptions& o,
                 const std::vector<int64_t>& batches, double copy_bps, const json& hf) {
  auto preset = FindPreset(name);
  if (!preset.ok()) Fail(preset.status(), 2);
  const ModelConfig c = preset->config;
  SliceLimits limits;
  limits.max_batch = *std::max_element(batches.begin(), batches.end());
  const int64_t longest =
      o.prefills.empty() ? 0 : *std::max_element(o.prefills.begin(), o.prefills.end());
  limits.max_batch = std::max(limits.max_batch, o.long_context > 0 ? kLongContextBatch : 0);
  limits.max_context =
      std::max({o.prompt + o.decode, o.prefill_after + longest,
                o.long_context > 0 ? o.long_context + kLongContextSteps : int64_t(0)});
  // A decode step of the largest batch is max_batch tokens.
  limits.max_step_tokens =
      std::max({longest, o.prefill_after, o.prompt, o.long_context, limits.max_batch});
  limits.kv_block_tokens = o.kv_block_tokens;
  limits.kv_blocks = BenchKvBlocks(o, limits);
  CudaBackendOptions bo;
  bo.graphs = o.graphs;
  bo.batch_invariant = o.batch_invariant;
  bo.chained_launches = o.chained;
  CheckFits(name, c, limits);
  std::fprintf(stderr, "%s: building, %s\n", name.c_str(), cuda::MemoryInfo().c_str());
  const auto t0 = Clock::now();
  WeightSource source;
  // What stays dense is f16 in a 4-bit checkpoint (as Qwen's releases ship it), else bf16.
  const DType dense = c.torch_dtype == "float16" ? DType::kF16 : DType::kBF16;
  source.tensor = [dense](Backend& b, const ExpectedTensor& t) -> absl::StatusOr<Tensor> {
    const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
    const bool norm = t.name.find("norm") != std::string::npos;
    return CudaRandomWeight(b, rows, t.shape.back(), dense, NameSeed(t.name), norm);
  };
  const int64_t group = c.quant.group_size;
  source.int4 = [group](Backend& b, const LinearSpec& l) -> absl::StatusOr<Linear> {
    return CudaRandomInt4(b, l.out, l.in, group, NameSeed(l.name));
  };
  auto slice =
      Slice::Build(c, {0, c.num_layers, true, true}, limits, MakeCudaBackend(0, bo), source);
  if (!slice.ok()) Fail(slice.status());
  (*slice)->backend().Synchronize();
  const double fill_s = Seconds(t0, Clock::now());
  std::fprintf(stderr, "%s: built, %s\n", name.c_str(), cuda::MemoryInfo().c_str());
  const uint64_t bytes = DecodeWeightBytes(c);
  std::mt19937 rng(1234);
  json r = {{"preset", name},
            {"fill_s", fill_s},
            {"weight_bytes_per_step", bytes},
            {"kv_cache_bytes", (*slice)->kv_cache_bytes()},
            {"graphs", o.graphs},
            {"scatter_kv", o.scatter_kv},
            {"kv_block_tokens", (*slice)->kv_shape().block_tokens},
            {"batch_invariant", o.batch_invariant},
            {"chained_launches", o.chained}};
  const json* base = hf.contains(name) ? &hf[name] : nullptr;
  for (int64_t b : batches) {
    json d = BenchBatch(**slice, b, o, rng);
    const double bps = double(bytes) / (d["ms_per_step"].get<double>() * 1e-3);
    d["weight_GBps"] = bps / 1e9;
    d["fraction_of_copy"] = bps / copy_bps;
    const std::string key = absl::StrCat("bs", b, "_decode_ms_per_step");
    if (base != nullptr && base->contains(key)) {
      d["hf_ms_per_step"] = (*base)[key];
      d["speedup_vs_hf"] = (*base)[key].get<double>() / d["ms_per_step"].get<double>();
    }
    r["decode"].push_back(d);
  }
  for (int64_t n : o.prefills) {
    json p = BenchPrefill(**slice, n, o.prefill_after, rng);
    const std::string key = absl::StrCat("prefill", n, "_ms");
    if (base != nullptr && base->contains(key) && o.prefill_after == 0) {
      p["hf_ms"] = (*base)[key];
      p["speedup_vs_hf"] = (*base)[key].get<double>() / p["ms"].get<double>();
    }
    r["prefill"].push_back(p);
  }
  if (o.long_context > 0) {
    BenchOptions lo = o;
    lo.prompt = o.long_context;
    lo.decode = kLongContextSteps;
    json d = BenchBatch(**slice, kLongContextBatch, lo, rng);
    // Keys and values read a step: every layer's, for each sequence's context (its mean over
    // the timed steps).
    const double context = double(o.long_context) + kLongContextSteps / 2.0;
    const double kv =
        double(kLongContextBatch) * context * double(c.num_layers) * 2.0 * double(c.kv_dim()) * 2.0;
    const double bps = (double(bytes) + kv) / (d["ms_per_step"].get<double>() * 1e-3);
    d["context"] = o.long_context;
    d["kv_bytes_per_step"] = kv;
    d["weight_and_kv_GBps"] = bps / 1e9;
    d["fraction_of_copy"] = bps / copy_bps;
    r["long_context"] = d;
  }
  slice->reset();  // free the model before the probe's weights
  if (o.probe) r["matmul_probe"] = ProbeMatMul(c);
  return r;
}

void PrintTable(const json& out) {
  std::printf("%s, copy bandwidth %.0f GB/s, %s\n", out["device"].get<std::string>().c_str(),
              out["copy_GBps"].get<double>(), out["date"].get<std::string>().c_str());
  for (const auto& r : out["results"]) {
    std::printf("\n%s: %.2f GB of weights per decode step (filled on the GPU in %.1f s)\n",
                r["preset"].get<std::string>().c_str(),
                r["weight_bytes_per_step"].get<double>() / 1e9, r["fill_s"].get<double>());
    std::printf("%6s %12s %12s %12s %10s %9s %12s %9s\n", "batch", "prefill ms", "ms/step",
                "tokens/s", "GB/s", "of copy", "HF ms/step", "speedup");
    for (const auto& d : r["decode"]) {
      const bool hf = d.contains("hf_ms_per_step");
      std::printf(
          "%6lld %12.1f %12.3f %12.0f %10.0f %8.0f%% %12s %9s\n",
          (long long)d["batch"].get<int64_t>(), d["prefill_ms"].get<double>(),
          d["ms_per_step"].get<double>(), d["tokens_per_s"].get<double>(),
          d["weight_GBps"].get<double>(), 100 * d["fraction_of_copy"].get<double>(),
          hf ? absl::StrCat(d["hf_ms_per_step"].get<double>()).c_str() : "-",
          hf ? absl::StrCat(absl::SixDigits(d["speedup_vs_hf"].get<double>()), "x").c_str() : "-");
    }
    for (const auto& p : r.value("matmul_probe", json::array())) {
      std::printf("  matmul %5lld x %5lld -> %6lld:", (long long)p["n"].get<int64_t>(),
                  (long long)p["k"].get<int64_t>(), (long long)p["m"].get<int64_t>());
      if (p.contains("cublas_GBps"))
        std::printf(" cuBLAS %6.0f GB/s", p["cublas_GBps"].get<double>());
      if (p.contains("ours_GBps")) std::printf(", ours %6.0f GB/s", p["ours_GBps"].get<double>());
      if (p.contains("invariant_GBps"))
        std::printf(", batch-invariant %6.0f GB/s", p["invariant_GBps"].get<double>());
      if (p.contains("int4_GBps")) std::printf(" int4 %6.0f GB/s", p["int4_GBps"].get<double>());
      std::printf("\n");
    }
    if (r.contains("long_context")) {
      const auto& d = r["long_context"];
      std::printf(
          "decode at %lld tokens of context, batch %lld: %.3f ms/step, %.0f GB/s of "
          "weights + KV (%.0f%% of copy)\n",
          (long long)d["context"].get<int64_t>(), (long long)d["batch"].get<int64_t>(),
          d["ms_per_step"].get<double>(), d["weight_and_kv_GBps"].get<double>(),
          100 * d["fraction_of_copy"].get<double>());
    }
    for (const auto& p : r.value("prefill", json::array())) {
      const int64_t after = p.value("after", int64_t(0));
      const std::string hf = p.contains("hf_ms") ? absl::StrFormat("; Hugging Face %.1f ms: %.2fx",
                                                                   p["hf_ms"].get<double>(),
                                                                   p["speedup_vs_hf"].get<double>())
                                                 : "";
      std::printf("prefill of %lld tokens%s: %.1f ms, %.0f tokens/s (first run %.1f ms)%s\n",
                  (long long)p["tokens"].get<int64_t>(),
                  after > 0 ? absl::StrCat(" after ", after, " cached").c_str() : "",
                  p["ms"].get<double>(), p["tokens_per_s"].get<double>(),
                  p["first_ms"].get<double>(), hf.c_str());
    }
  }
}

void RunBench(const BenchOptions& o) {
  if (cuda::DeviceCount() == 0) Fail(absl::UnavailableError("bench: no CUDA device visible"));
  auto ids = ParseIdList(o.batches);
  if (!ids.ok()) Fail(ids.status(), 2);
  std::vector<int64_t> batches(ids->begin(), ids->end());
  if (batches.empty() || *std::min_element(batches.begin(), batches.end()) < 1 || o.decode < 2)
    Fail(absl::InvalidArgumentError("bench: nothing to time"), 2);
  if (o.long_context < 0) Fail(absl::InvalidArgumentError("bench: --long-context must be >= 0"), 2);
  if (o.prefill_after < 0) {
    Fail(absl::InvalidArgumentError("bench: --prefill-after must be >= 0"), 2);
  }
  BenchOptions opts = o;
  if (o.prefill != "0") {
    auto prefills = ParseIdList(o.prefill);
    if (!prefills.ok()) Fail(prefills.status(), 2);
    for (int64_t n : *prefills) {
      if (n < 1) Fail(absl::InvalidArgumentError("bench: --prefill lengths must be >= 1"), 2);
      opts.prefills.push_back(n);
    }
  }
  if (auto s = cuda::PinDevice(0); !s.ok()) Fail(s);
  const json hf = LoadBaseline(o.hf_baseline);
  const double copy_bps = CudaCopyBandwidth(1ull << 30, 10);
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  json out = {{"device", *cuda::DeviceDescription(0)},
              {"date", date},
              {"copy_GBps", copy_bps / 1e9},
              {"results", json::array()}};
  if (hf.contains("_device")) out["hf_device"] = hf["_device"];
  for (absl::string_view name : absl::StrSplit(o.presets, ',')) {
    out["results"].push_back(BenchPreset(std::string(name), opts, batches, copy_bps, hf));
    if (!o.as_json) std::fprintf(stderr, "%s done\n", std::string(name).c_str());
  }
  if (!o.json_out.empty()) std::ofstream(o.json_out) << out.dump(2) << "\n";
  if (o.as_json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    PrintTable(out);
  }
}

}  // namespace

void AddBenchCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench", "decode and prefill speed on GPU 0, random weights of a preset's shape");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("--preset", o->presets, "presets, comma-separated")->capture_default_str();
  cmd->add_option("--batches", o->batches, "decode batch sizes")->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "prompt tokens per sequence")->capture_default_str();
  cmd->add_option("--decode", o->decode, "decode steps")->capture_default_str();
  cmd->add_option("--prefill", o->prefill,
                  "tokens of the single-sequence prefills, comma-separated (0: none)")
      ->capture_default_str();
  cmd->add_option("--prefill-after", o->prefill_after,
                  "prefill after this many cached positions (a prompt whose prefix is cached)")
      ->capture_default_str();
  cmd->add_option("--long-context", o->long_context,
                  "also time decode of 16 sequences at this many tokens of context (0: none)")
      ->capture_default_str();
  cmd->add_option("--hf-baseline", o->hf_baseline, "output of hf_baseline.py (JSON lines)");
  cmd->add_flag("!--no-graphs", o->graphs, "issue decode steps op by op (no CUDA graphs)");
  cmd->add_flag("!--no-chained-launches", o->chained,
                "launch each kernel after the one before has ended (no programmatic dependent "
                "launch)");
  cmd->add_flag("--batch-invariant", o->batch_invariant,
                "a row's result independent of its step's other rows (the cluster file's "
                "batch_invariant)");
  cmd->add_flag("--scatter-kv", o->scatter_kv,
                "give each sequence KV blocks drawn at random from the pool (as a serving "
                "cluster's are) instead of a contiguous run");
  cmd->add_option("--kv-block-tokens", o->kv_block_tokens, "positions per KV-cache block")
      ->capture_default_str();
  cmd->add_flag("--json", o->as_json, "print one JSON object");
  cmd->add_flag("--probe", o->probe, "also time single matrix products (ours vs cuBLAS)");
  cmd->add_option("--json-out", o->json_out, "also write the JSON object to this file");
  cmd->callback([o] { RunBench(*o); });
}

}  // namespace lp::cli
