// In-process chain of slices (see local_chain.h).
#include "engine/local_chain.h"

#include "common/status.h"

namespace lp {

int32_t ArgMax(std::span<const float> v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[size_t(best)]) best = int32_t(i);
  }
  return best;
}

absl::StatusOr<std::unique_ptr<LocalChain>> LocalChain::Load(Checkpoint& ckpt,
                                                             const std::vector<SliceSpec>& specs,
                                                             const SliceLimits& limits,
                                                             const BackendFactory& make_backend) {
  if (specs.empty() || !specs.front().embed || !specs.back().head) {
    return absl::InvalidArgumentError("a chain needs the embedding first and the head last");
  }
  auto chain = std::make_unique<LocalChain>();
  for (const auto& spec : specs) {
    ASSIGN_OR_RETURN(auto backend, make_backend());
    ASSIGN_OR_RETURN(auto slice, Slice::Load(ckpt, spec, limits, std::move(backend)));
    chain->slices_.push_back(std::move(slice));
  }
  return chain;
}

absl::Status LocalChain::Step(const StepLayout& layout, std::span<const int32_t> ids,
                              std::vector<float>* logits) {
  std::span<const float> in;
  for (size_t i = 0; i < slices_.size(); ++i) {
    std::vector<float>* out = slices_[i]->spec().head ? logits : (i % 2 ? &b_ : &a_);
    RETURN_IF_ERROR(
        slices_[i]->Forward(layout, i == 0 ? ids : std::span<const int32_t>{}, in, out));
    in = *out;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> LocalChain::Greedy(std::span<const int32_t> prompt,
                                                        int64_t n_new, int32_t slot) {
  std::vector<int32_t> generated;
  std::vector<float> logits;
  StepLayout layout;
  layout.seqs = {{slot, 0, int32_t(prompt.size())}};
  RETURN_IF_ERROR(Step(layout, prompt, &logits));
  for (int64_t i = 0; i < n_new; ++i) {
    const int32_t next = ArgMax(logits);
    generated.push_back(next);
    if (i + 1 == n_new) break;
    layout.seqs = {{slot, int32_t(prompt.size() + i), 1}};
    RETURN_IF_ERROR(Step(layout, std::span<const int32_t>(&next, 1), &logits));
  }
  return generated;
}

}  // namespace lp
