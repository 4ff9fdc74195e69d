// Slices of one model chained inside one process, hidden states handed over in host memory.
// What `layerpipe logits` / `layerpipe greedy` and the model tests run; the cluster runs the
// same slices in separate worker processes.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/checkpoint.h"
#include "engine/backend.h"
#include "engine/slice.h"

namespace lp {

// Makes each slice's backend; an error stops the load.
using BackendFactory = std::function<absl::StatusOr<std::unique_ptr<Backend>>()>;

class LocalChain {
 public:
  static absl::StatusOr<std::unique_ptr<LocalChain>> Load(Checkpoint& ckpt,
                                                          const std::vector<SliceSpec>& specs,
                                                          const SliceLimits& limits,
                                                          const BackendFactory& make_backend);

  const std::vector<std::unique_ptr<Slice>>& slices() const { return slices_; }
  int64_t vocab_size() const { return slices_.back()->config().vocab_size; }

  // One step through every slice; `logits` gets [sequences, vocab].
  absl::Status Step(const StepLayout& layout, std::span<const int32_t> ids,
                    std::vector<float>* logits);

  // Prefills `prompt` into KV slot `slot` (positions 0..n-1), then appends `n_new` greedy tokens.
  absl::StatusOr<std::vector<int32_t>> Greedy(std::span<const int32_t> prompt, int64_t n_new,
                                              int32_t slot = 0);

 private:
  std::vector<std::unique_ptr<Slice>> slices_;
  std::vector<float> a_, b_;  // hidden states between slices
};

// Index of the largest value (the first one on ties, as torch.argmax).
int32_t ArgMax(std::span<const float> v);

}  // namespace lp
