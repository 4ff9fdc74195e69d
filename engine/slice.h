// A slice: the unit a worker executes. Decoder layers [begin, end) of a Qwen3 / Qwen2 model,
// plus the embedding when it is the first slice and the final norm + lm_head when it is the
// last. It owns its layers' weights and KV cache on one backend. Between slices travels the
// hidden state (the residual stream), [tokens, hidden_size] float32.
//
// The decoder is written here once, against the Backend op interface.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/checkpoint.h"
#include "common/kv_pages.h"
#include "common/model_config.h"
#include "common/model_layout.h"
#include "engine/backend.h"

namespace lp {

struct SliceSpec {
  int64_t begin = 0;   // first decoder layer
  int64_t end = 0;     // one past the last
  bool embed = false;  // owns model.embed_tokens (the first slice)
  bool head = false;   // owns model.norm + lm_head (the last slice)
};

// What sizes the KV cache and the workspaces; nothing is allocated per step.
struct SliceLimits {
  int64_t max_batch = 8;           // sequences at once (slots)
  int64_t max_context = 2048;      // positions per sequence
  int64_t max_step_tokens = 2048;  // tokens in one step, all sequences together
  // KV-cache blocks (0: enough for max_batch sequences of max_context, each slot its own run,
  // what a caller that sends no block tables needs) of kv_block_tokens positions.
  int64_t kv_blocks = 0;
  int64_t kv_block_tokens = kDefaultKvBlockTokens;
};

// Splits `num_layers` layers into `n` contiguous slices of near-equal size, the first slice
// with the embedding and the last with the head (for tests and `layerpipe logits --slices`).
std::vector<SliceSpec> EvenSlices(int64_t num_layers, int64_t n);

// A step's hidden states that stay on the backend instead of passing through host memory (a
// worker moves them to and from its neighbours on the device itself). Each callback gets the
// step's hidden-state buffer ([tokens, hidden_size], float32) and queues its copy in order with
// the step's work.
struct KeepOnBackend {
  // A non-first slice's input, filled before Backend::BeginStep.
  std::function<void(const Tensor& hidden)> fill_input;
  // A non-last slice's output, taken after the layers (Forward then leaves `out` empty).
  std::function<void(const Tensor& hidden)> take_output;
};

// Makes the slice's weights on its backend: `tensor` a dense tensor `t` (rows = 1 for 1-D
// tensors), `int4` a linear stored in 4 bits (LinearSpec::int4).
struct WeightSource {
  std::function<absl::StatusOr<Tensor>(Backend&, const ExpectedTensor& t)> tensor;
  std::function<absl::StatusOr<Linear>(Backend&, const LinearSpec& linear)> int4;
};

class Slice {
 public:
  // Called after each tensor loaded: (tensors done, tensors in the slice).
  using Progress = std::function<void(int64_t done, int64_t total)>;
  // Loads only the tensors of `spec` from `ckpt` onto `backend`.
  static absl::StatusOr<std::unique_ptr<Slice>> Load(Checkpoint& ckpt, const SliceSpec& spec,
                                                     const SliceLimits& limits,
                                                     std::unique_ptr<Backend> backend,
                                                     const Progress& progress = nullptr);
  // The same with weights from `source` (benchmarks fill random weights on the device).
  static absl::StatusOr<std::unique_ptr<Slice>> Build(const ModelConfig& config,
                                                      const SliceSpec& spec,
                                                      const SliceLimits& limits,
                                                      std::unique_ptr<Backend> backend,
                                                      const WeightSource& source,
                                                      const Progress& progress = nullptr);

  const SliceSpec& spec() const { return spec_; }
  const ModelConfig& config() const { return config_; }
  const SliceLimits& limits() const { return limits_; }
  // Width of the output rows: vocab_size on the last slice, else hidden_size.
  int64_t output_cols() const { return spec_.head ? config_.vocab_size : config_.hidden_size; }
  // Number of output rows for `layout`: one per sequence on the last slice, else per token.
  int64_t output_rows(const StepLayout& layout) const;

  // Runs one step. The first slice reads token `ids` (one per token of the layout); the others
  // read `hidden_in` ([tokens, hidden_size]). Writes the hidden state of every token, or on the
  // last slice the logits of each sequence's last token, into `out` (resized). On the last
  // slice `out` may be null: the logits then stay on the backend for Sample.
  // A step in which every sequence has one token (decode) may be recorded and replayed by the
  // backend (Backend::Replay), keyed by its number of sequences.
  // With `keep`, the hidden state comes from / goes to its callbacks instead.
  absl::Status Forward(const StepLayout& layout, std::span<const int32_t> ids,
                       std::span<const float> hidden_in, std::vector<float>* out,
                       const KeepOnBackend& keep = {});
  // Last slice, after Forward: one token per sequence of that step, by rows[sequence].
  absl::Status Sample(std::span<const SampleInput> rows, std::vector<SampleResult>* out);

  // Runs, on made-up input, each step shape whose first run costs more than later ones: a step
  // of every RowBucket up to the step limit (the CUDA backend chooses its matrix products'
  // algorithm, and loads their kernels, once per bucket: 8-11 ms of a Qwen3-8B prefill on an
  // H100), and a decode step of every batch size up to max_batch twice (recorded
  // as a CUDA graph, then replayed), each followed on the last slice by a greedy sample. Done at
  // start, no request waits for either. The made-up keys and values are harmless: a sequence
  // writes every position before it reads it.
  absl::Status WarmUp();
  Backend& backend() { return *backend_; }
  uint64_t kv_cache_bytes() const { return kv_cache_->bytes(); }
  const KvCacheShape& kv_shape() const { return kv_cache_->shape(); }

 private:
  struct Layer {
    Tensor input_norm, post_norm;
    Linear q, k, v, o;              // projections, [out, in]
    Tensor q_bias, k_bias, v_bias;  // Qwen2 only
    Tensor q_norm, k_norm;          // Qwen3 only
    Linear gate, up, down;
  };
  Slice(const ModelConfig& config, const SliceSpec& spec, const SliceLimits& limits,
        std::unique_ptr<Backend> backend);
  absl::Status LoadWeights(const WeightSource& source, const Progress& progress);
  void AllocateWorkspace();
  absl::Status CheckLayout(const StepLayout& layout, size_t ids, size_t hidden) const;
  // A sequence's KV block table against the pool.
  absl::Status CheckBlocks(const SeqChunk& s) const;
  // `act_type`: the type of the activations that Backend::ActivationsInWeightType concerns.
  void RunLayer(const Layer& w, int64_t layer, int64_t tokens, bool first, DType act_type);
  // That type for a step of `tokens` rows: bf16 for bf16 weights where the backend allows it.
  DType ActivationType(int64_t tokens) const;
  // out = x w^T (+ bias), dense or packed.
  void Project(const Tensor& x, const Linear& w, const Tensor* bias, Tensor& out);
  void RunLayersAndHead(int64_t tokens, int64_t seqs);

  ModelConfig config_;
  SliceSpec spec_;
  SliceLimits limits_;
  AttentionParams attn_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<KvCache> kv_cache_;

  Tensor embed_;  // [vocab, hidden], first slice
  std::vector<Layer> layers_;
  // Every projection dense (none packed) and bf16.
  bool dense_bf16_ = false;
  Tensor final_norm_, lm_head_;  // last slice; lm_head_ is the embedding table when tied

  // Workspaces sized for max_step_tokens rows.
  Tensor residual_, normed_, q_, k_, v_, attn_out_, proj_, gate_, up_, act_;
  Tensor last_rows_, last_normed_, logits_;  // max_batch rows
  std::vector<int32_t> last_row_index_;
  int64_t last_step_seqs_ = 0;  // sequences of the last step, for Sample
};

}  // namespace lp
