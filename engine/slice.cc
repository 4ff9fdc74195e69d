// The Qwen3 / Qwen2 decoder, written once over the Backend interface (see slice.h).
#include "engine/slice.h"

#include <algorithm>
#include <array>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/model_layout.h"
#include "common/status.h"

namespace lp {

std::vector<SliceSpec> EvenSlices(int64_t num_layers, int64_t n) {
  std::vector<SliceSpec> slices;
  int64_t begin = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t end = begin + num_layers / n + (i < num_layers % n ? 1 : 0);
    slices.push_back({begin, end, i == 0, i == n - 1});
    begin = end;
  }
  return slices;
}

Slice::Slice(const ModelConfig& config, const SliceSpec& spec, const SliceLimits& limits,
             std::unique_ptr<Backend> backend)
    : config_(config), spec_(spec), limits_(limits), backend_(std::move(backend)) {
  attn_.num_heads = config.num_heads;
  attn_.num_kv_heads = config.num_kv_heads;
  attn_.head_dim = config.head_dim;
  attn_.rope_theta = config.rope_theta;
  attn_.rms_norm_eps = float(config.rms_norm_eps);
}

absl::StatusOr<std::unique_ptr<Slice>> Slice::Load(Checkpoint& ckpt, const SliceSpec& spec,
                                                   const SliceLimits& limits,
                                                   std::unique_ptr<Backend> backend,
                                                   const Progress& progress) {
  WeightSource source;
  source.tensor = [&ckpt](Backend& b, const ExpectedTensor& t) -> absl::StatusOr<Tensor> {
    ASSIGN_OR_RETURN(TensorView view, ckpt.Get(t));
    const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
    return b.LoadWeight(view, rows, t.shape.back());
  };
  source.int4 = [&ckpt](Backend& b, const LinearSpec& l) -> absl::StatusOr<Linear> {
    ASSIGN_OR_RETURN(Int4Matrix m, ReadInt4(ckpt, l));
    return b.LoadInt4(m);
  };
  return Build(ckpt.config(), spec, limits, std::move(backend), source, progress);
}

absl::StatusOr<std::unique_ptr<Slice>> Slice::Build(const ModelConfig& c, const SliceSpec& spec,
                                                    const SliceLimits& limits,
                                                    std::unique_ptr<Backend> backend,
                                                    const WeightSource& source,
                                                    const Progress& progress) {
  if (spec.begin < 0 || spec.end < spec.begin || spec.end > c.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("slice layers [", spec.begin, ", ", spec.end,
                                                   ") outside the model's ", c.num_layers));
  }
  if (limits.max_batch <= 0 || limits.max_context <= 0 || limits.max_step_tokens <= 0 ||
      limits.kv_blocks < 0) {
    return absl::InvalidArgumentError("slice limits must be positive");
  }
  if (!ValidKvBlockTokens(limits.kv_block_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat("kv_block_tokens is ", limits.kv_block_tokens,
                                                   "; supported: a power of two from 16 to 256"));
  }
  const int64_t per_seq = KvBlocksFor(limits.max_context, limits.kv_block_tokens);
  if (limits.kv_blocks > 0 && limits.kv_blocks < per_seq) {
    return absl::InvalidArgumentError(
        absl::StrCat("a KV cache of ", limits.kv_blocks, " blocks of ", limits.kv_block_tokens,
                     " tokens cannot hold one sequence of max_context ", limits.max_context, " (",
                     per_seq, " blocks)"));
  }
  std::unique_ptr<Slice> slice(new Slice(c, spec, limits, std::move(backend)));
  // A shape the backend's kernels cannot run is refused now, not at the first step.
  if (spec.end > spec.begin) RETURN_IF_ERROR(slice->backend_->CheckAttention(slice->attn_));
  RETURN_IF_ERROR(slice->LoadWeights(source, progress));
  slice->AllocateWorkspace();
  return slice;
}

absl::Status Slice::LoadWeights(const WeightSource& source, const Progress& progress) {
  Backend& b = *backend_;
  const bool needs_table = spec_.embed || (spec_.head && config_.tie_word_embeddings);
  // Per layer: 2 norms, the linears, the optional biases and q/k norms.
  const int64_t per_layer = 2 + int64_t(LayerLinears(config_, 0).size()) +
                            (config_.attention_bias ? 3 : 0) + (config_.qk_norm ? 2 : 0);
  const int64_t total = (needs_table ? 1 : 0) + per_layer * (spec_.end - spec_.begin) +
                        (spec_.head ? int64_t(1 + HeadTensors(config_).size()) : 0);
  int64_t done = 0;
  auto loaded = [&] {
    ++done;
    // Report about 10 times per slice, and at the end.
    if (progress && (done == total || done % std::max<int64_t>(1, total / 10) == 0)) {
      progress(done, total);
    }
  };
  auto load = [&](const ExpectedTensor& t, Tensor* out) -> absl::Status {
    ASSIGN_OR_RETURN(*out, source.tensor(b, t));
    loaded();
    return absl::OkStatus();
  };
  auto load_linear = [&](const LinearSpec& l, Linear* out) -> absl::Status {
    if (l.int4) {
      ASSIGN_OR_RETURN(*out, source.int4(b, l));
    } else {
      ASSIGN_OR_RETURN(Tensor dense, source.tensor(b, {l.name + ".weight", {l.out, l.in}}));
      *out = Linear{dense, nullptr, l.out, l.in};
    }
    loaded();
    return absl::OkStatus();
  };
  auto find = [](const std::vector<ExpectedTensor>& ts, const std::string& suffix) {
    return *std::find_if(ts.begin(), ts.end(), [&](const ExpectedTensor& t) {
      return t.name.size() >= suffix.size() &&
             t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0;
    });
  };
  if (needs_table) {
    RETURN_IF_ERROR(load(EmbedTensors(config_)[0], &embed_));
  }
  for (int64_t l = spec_.begin; l < spec_.end; ++l) {
    const auto ts = LayerTensors(config_, l);
    Layer w;
    RETURN_IF_ERROR(load(find(ts, "input_layernorm.weight"), &w.input_norm));
    RETURN_IF_ERROR(load(find(ts, "post_attention_layernorm.weight"), &w.post_norm));
    const auto linears = LayerLinears(config_, l);  // q, k, v, o, gate, up, down
    Linear* dst[] = {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down};
    for (size_t i = 0; i < linears.size(); ++i) {
      RETURN_IF_ERROR(load_linear(linears[i], dst[i]));
    }
    if (config_.attention_bias) {
      RETURN_IF_ERROR(load(find(ts, "q_proj.bias"), &w.q_bias));
      RETURN_IF_ERROR(load(find(ts, "k_proj.bias"), &w.k_bias));
      RETURN_IF_ERROR(load(find(ts, "v_proj.bias"), &w.v_bias));
    }
    if (config_.qk_norm) {
      RETURN_IF_ERROR(load(find(ts, "q_norm.weight"), &w.q_norm));
      RETURN_IF_ERROR(load(find(ts, "k_norm.weight"), &w.k_norm));
    }
    layers_.push_back(std::move(w));
  }
  dense_bf16_ = !layers_.empty();
  for (const Layer& w : layers_) {
    for (const Linear* l : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) {
      dense_bf16_ = dense_bf16_ && !l->packed && l->dense.dtype == DType::kBF16;
    }
  }
  if (spec_.head) {
    RETURN_IF_ERROR(load(NormTensors(config_)[0], &final_norm_));
    if (config_.tie_word_embeddings) {
      lm_head_ = embed_;
    } else {
      RETURN_IF_ERROR(load(HeadTensors(config_)[0], &lm_head_));
    }
    // A tied head on a later slice keeps its own copy of the table, loaded above.
    if (!spec_.embed) embed_ = Tensor{};
  }
  return absl::OkStatus();
}

void Slice::AllocateWorkspace() {
  Backend& b = *backend_;
  const int64_t t = limits_.max_step_tokens, h = config_.hidden_size;
  residual_ = b.Alloc(t, h);
  normed_ = b.Alloc(t, h);
  q_ = b.Alloc(t, config_.q_dim());
  k_ = b.Alloc(t, config_.kv_dim());
  v_ = b.Alloc(t, config_.kv_dim());
  attn_out_ = b.Alloc(t, config_.q_dim());
  proj_ = b.Alloc(t, h);
  gate_ = b.Alloc(t, config_.intermediate_size);
  up_ = b.Alloc(t, config_.intermediate_size);
  act_ = b.Alloc(t, config_.intermediate_size);
  if (spec_.head) {
    last_rows_ = b.Alloc(limits_.max_batch, h);
    last_normed_ = b.Alloc(limits_.max_batch, h);
    logits_ = b.Alloc(limits_.max_batch, config_.vocab_size);
  }
  KvCacheShape shape;
  shape.num_layers = spec_.end - spec_.begin;
  shape.block_tokens = limits_.kv_block_tokens;
  shape.max_blocks_per_seq = KvBlocksFor(limits_.max_context, shape.block_tokens);
  shape.num_blocks =
      limits_.kv_blocks > 0 ? limits_.kv_blocks : limits_.max_batch * shape.max_blocks_per_seq;
  shape.max_seqs = limits_.max_batch;
  shape.num_kv_heads = config_.num_kv_heads;
  shape.head_dim = config_.head_dim;
  kv_cache_ = b.CreateKvCache(shape);
  last_row_index_.reserve(size_t(limits_.max_batch));
}

int64_t Slice::output_rows(const StepLayout& layout) const {
  return spec_.head ? int64_t(layout.seqs.size()) : layout.total_tokens();
}

absl::Status Slice::CheckLayout(const StepLayout& layout, size_t ids, size_t hidden) const {
  const int64_t tokens = layout.total_tokens();
  if (layout.seqs.empty() || tokens == 0) return absl::InvalidArgumentError("empty step");
  if (tokens > limits_.max_step_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("step of ", tokens, " tokens exceeds the limit of ", limits_.max_step_tokens));
  }
  if (int64_t(layout.seqs.size()) > limits_.max_batch) {
    return absl::InvalidArgumentError("more sequences in a step than KV-cache slots");
  }
  std::vector<bool> used(size_t(limits_.max_batch), false);
  for (const auto& s : layout.seqs) {
    if (s.slot < 0 || s.slot >= limits_.max_batch || used[size_t(s.slot)]) {
      return absl::InvalidArgumentError(absl::StrCat("bad or repeated KV slot ", s.slot));
    }
    used[size_t(s.slot)] = true;
    if (s.n_tokens <= 0 || s.start_pos < 0 ||
        int64_t(s.start_pos) + s.n_tokens > limits_.max_context) {
      return absl::InvalidArgumentError(
          absl::StrCat("positions [", s.start_pos, ", ", int64_t(s.start_pos) + s.n_tokens,
                       ") outside the context limit of ", limits_.max_context));
    }
    RETURN_IF_ERROR(CheckBlocks(s));
  }
  if (spec_.embed && int64_t(ids) != tokens) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", tokens, " token ids, got ", ids));
  }
  if (!spec_.embed && int64_t(hidden) != tokens * config_.hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat("expected a hidden state of ", tokens, " x ",
                                                   config_.hidden_size, " floats, got ", hidden));
  }
  return absl::OkStatus();
}

absl::Status Slice::CheckBlocks(const SeqChunk& s) const {
  const KvCacheShape& kv = kv_cache_->shape();
  if (s.blocks.empty()) {
    if ((int64_t(s.slot) + 1) * kv.max_blocks_per_seq > kv.num_blocks) {
      return absl::InvalidArgumentError(
          absl::StrCat("slot ", s.slot, " has no KV block table, and the pool of ", kv.num_blocks,
                       " blocks has no run of its own for it"));
    }
    return absl::OkStatus();
  }
  const int64_t need = KvBlocksFor(int64_t(s.start_pos) + s.n_tokens, kv.block_tokens);
  if (int64_t(s.blocks.size()) < need || int64_t(s.blocks.size()) > kv.max_blocks_per_seq) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slot ", s.slot, ": a KV block table of ", s.blocks.size(), " blocks for positions up to ",
        int64_t(s.start_pos) + s.n_tokens, " (needs ", need, " to ", kv.max_blocks_per_seq, ")"));
  }
  for (int32_t b : s.blocks) {
    if (b < 0 || b >= kv.num_blocks) {
      return absl::InvalidArgumentError(
          absl::StrCat("slot ", s.slot, ": KV block ", b, " outside the pool of ", kv.num_blocks));
    }
  }
  return absl::OkStatus();
}

// bf16 weights only: f16 holds values up to 65504, which a projection's output (the down
// projection's in Qwen2 models above all) may pass where float32 keeps it.
DType Slice::ActivationType(int64_t tokens) const {
  const std::array<int64_t, 3> widths = {config_.hidden_size, config_.q_dim(),
                                         config_.intermediate_size};
  if (dense_bf16_ && backend_->ActivationsInWeightType(tokens, widths)) {
    return DType::kBF16;
  }
  return DType::kF32;
}

// The MLP's output is added to the residual stream by the next layer's first op (AddRmsNorm),
// or after the last layer (RunLayersAndHead): one pass over the stream fewer per layer.
void Slice::RunLayer(const Layer& w, int64_t layer, int64_t tokens, bool first, DType act_type) {
  Backend& b = *backend_;
  Tensor x = residual_.Rows(tokens), xn = normed_.Rows(tokens);
  Tensor q = q_.Rows(tokens), k = k_.Rows(tokens), v = v_.Rows(tokens);
  Tensor attn = attn_out_.Rows(tokens), proj = proj_.Rows(tokens);
  Tensor gate = gate_.Rows(tokens), up = up_.Rows(tokens), act = act_.Rows(tokens);
  const float eps = attn_.rms_norm_eps;
  const bool bias = config_.attention_bias, qk_norm = config_.qk_norm;
  // (in buffers sized for float32)
  xn.dtype = attn.dtype = proj.dtype = gate.dtype = up.dtype = act.dtype = act_type;

  if (first) {
    b.RmsNorm(x, w.input_norm, eps, xn);
  } else {
    b.AddRmsNorm(x, proj, w.input_norm, eps, xn);  // x += previous MLP; xn = norm(x)
  }
  Project(xn, w.q, bias ? &w.q_bias : nullptr, q);
  Project(xn, w.k, bias ? &w.k_bias : nullptr, k);
  Project(xn, w.v, bias ? &w.v_bias : nullptr, v);
  b.QkNormRope(q, k, qk_norm ? &w.q_norm : nullptr, qk_norm ? &w.k_norm : nullptr, attn_);
  b.Attention(q, k, v, *kv_cache_, layer - spec_.begin, attn_, attn);
  Project(attn, w.o, nullptr, proj);
  b.AddRmsNorm(x, proj, w.post_norm, eps, xn);  // x += attention; xn = norm(x)
  Project(xn, w.gate, nullptr, gate);
  Project(xn, w.up, nullptr, up);
  b.SiluMul(gate, up, act);
  Project(act, w.down, nullptr, proj);  // added to x by the next layer or RunLayersAndHead
}

void Slice::Project(const Tensor& x, const Linear& w, const Tensor* bias, Tensor& out) {
  if (w.packed) {
    backend_->MatMulInt4(x, w, bias, out);
  } else {
    backend_->MatMul(x, w.dense, bias, out);
  }
}

absl::Status Slice::Forward(const StepLayout& layout, std::span<const int32_t> ids,
                            std::span<const float> hidden_in, std::vector<float>* out,
                            const KeepOnBackend& keep) {
  const bool input_kept = keep.fill_input && !spec_.embed;
  RETURN_IF_ERROR(CheckLayout(
      layout, ids.size(),
      input_kept ? size_t(layout.total_tokens() * config_.hidden_size) : hidden_in.size()));
  Backend& b = *backend_;
  const int64_t tokens = layout.total_tokens();
  last_row_index_.clear();
  int32_t row = 0;
  for (const auto& s : layout.seqs) {
    row += s.n_tokens;
    last_row_index_.push_back(row - 1);
  }
  Tensor x = residual_.Rows(tokens);
  // The input from a neighbour goes on the device first: its wait for the previous worker is
  // then queued before this step's layout copy, which measured 0.1 ms less per hop on an H200
  // (engine/cuda/NOTES.md). The copy touches only x, never the layout.
  if (input_kept) keep.fill_input(x);
  b.BeginStep(layout);
  if (spec_.embed) {
    for (int32_t id : ids) {
      if (id < 0 || id >= config_.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", id, " outside the vocabulary of ", config_.vocab_size));
      }
    }
    b.Embed(embed_, ids, x);
  } else if (!input_kept) {
    b.Upload(hidden_in, x);
  }
  // A decode step (one token per sequence) depends on the step only through the layout, so
  // the backend may replay what it recorded for the same number of sequences.
  const int64_t n = int64_t(layout.seqs.size());
  const bool decode = tokens == n;
  if (!decode || !b.Replay(n)) {
    if (decode) b.BeginRecord(n);
    RunLayersAndHead(tokens, n);
    if (decode) b.EndRecord();
  }
  last_step_seqs_ = n;
  if (!spec_.head && keep.take_output) {
    keep.take_output(x);
    out->clear();
    return absl::OkStatus();
  }
  if (!spec_.head) {
    out->resize(size_t(tokens * config_.hidden_size));
    b.Download(x, *out);
    return absl::OkStatus();
  }
  if (out != nullptr) {
    out->resize(size_t(n * config_.vocab_size));
    b.Download(logits_.Rows(n), *out);
  }
  return absl::OkStatus();
}

absl::Status Slice::WarmUp() {
  // A step of `rows` tokens: sequences of at most max_context tokens in slots 0, 1, ..., all
  // in the pool's first blocks (which a sequence at the context limit needs; the pool has them).
  std::vector<int32_t> blocks(size_t(kv_cache_->shape().max_blocks_per_seq));
  std::iota(blocks.begin(), blocks.end(), 0);
  auto prefill = [&](int64_t rows) {
    StepLayout layout;
    for (int32_t slot = 0; rows > 0 && slot < limits_.max_batch; ++slot) {
      const int64_t n = std::min(rows, limits_.max_context);
      layout.seqs.push_back(
          {.slot = slot, .start_pos = 0, .n_tokens = int32_t(n), .blocks = blocks});
      rows -= n;
    }
    return layout;
  };
  auto decode = [&](int64_t batch) {
    StepLayout layout;
    for (int32_t slot = 0; slot < batch; ++slot) {
      layout.seqs.push_back({.slot = slot, .start_pos = 0, .n_tokens = 1, .blocks = blocks});
    }
    return layout;
  };
  const int64_t most = std::min(limits_.max_step_tokens, limits_.max_batch * limits_.max_context);
  std::vector<StepLayout> steps;
  for (int64_t rows = 16; rows < most; rows = RowBucket(rows + 1)) steps.push_back(prefill(rows));
  if (most > 1) steps.push_back(prefill(most));
  for (int64_t batch = 1; batch <= std::min(limits_.max_batch, most); ++batch) {
    steps.push_back(decode(batch));  // recorded
    steps.push_back(decode(batch));  // replayed
  }
  std::vector<float> out;
  for (const StepLayout& layout : steps) {
    const int64_t n = layout.total_tokens();
    const std::vector<int32_t> ids(spec_.embed ? size_t(n) : 0, 0);
    const std::vector<float> hidden(spec_.embed ? 0 : size_t(n * config_.hidden_size), 0.0f);
    RETURN_IF_ERROR(Forward(layout, ids, hidden, spec_.head ? nullptr : &out));
    if (spec_.head) {
      std::vector<SampleResult> sampled;
      RETURN_IF_ERROR(Sample(std::vector<SampleInput>(layout.seqs.size()), &sampled));
    }
  }
  backend_->Synchronize();
  return absl::OkStatus();
}

void Slice::RunLayersAndHead(int64_t tokens, int64_t n) {
  Backend& b = *backend_;
  const DType act_type = ActivationType(tokens);
  for (int64_t l = spec_.begin; l < spec_.end; ++l) {
    RunLayer(layers_[size_t(l - spec_.begin)], l, tokens, l == spec_.begin, act_type);
  }
  Tensor x = residual_.Rows(tokens), proj = proj_.Rows(tokens);
  proj.dtype = act_type;
  if (spec_.end > spec_.begin) b.Add(x, proj);
  if (!spec_.head) return;
  // Only each sequence's last token needs logits.
  Tensor last = last_rows_.Rows(n), last_normed = last_normed_.Rows(n), logits = logits_.Rows(n);
  b.GatherRows(x, last_row_index_, last);
  b.RmsNorm(last, final_norm_, attn_.rms_norm_eps, last_normed);
  b.MatMul(last_normed, lm_head_, nullptr, logits);
}

absl::Status Slice::Sample(std::span<const SampleInput> rows, std::vector<SampleResult>* out) {
  if (!spec_.head) return absl::FailedPreconditionError("only the last slice samples");
  if (int64_t(rows.size()) != last_step_seqs_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected sampling parameters for ", last_step_seqs_, " sequences, got ", rows.size()));
  }
  out->resize(rows.size());
  backend_->Sample(logits_.Rows(last_step_seqs_), rows, *out);
  return absl::OkStatus();
}

}  // namespace lp
