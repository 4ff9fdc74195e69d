// Fuzz target: the coordinator's request validation (ValidateGenerate) on a GenerateRequest
// decoded from the input's protobuf bytes, as the gRPC API receives it; the prompt is its
// token_ids (else a fixed one). What it accepts must be inside every limit the workers and the
// sampler rely on.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "coordinator/request_validation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (64 << 10)) return 0;
  layerpipe::v1::GenerateRequest r;
  if (!r.ParseFromArray(data, int(size))) return 0;
  const lp::ValidationContext ctx{/*vocab_size=*/1000, /*max_context=*/64, /*eos_ids=*/{999}};
  std::vector<int32_t> prompt = {1, 2, 3};
  if (r.has_token_ids()) prompt.assign(r.token_ids().ids().begin(), r.token_ids().ids().end());
  auto p = lp::ValidateGenerate(r, prompt, ctx, /*random_seed=*/7);
  if (!p.ok()) return 0;
  const lp::SamplingParams& s = p->sampling;
  const int64_t room = ctx.max_context - int64_t(prompt.size());
  if (prompt.empty() || p->max_tokens < 1 || p->max_tokens > room) std::abort();
  if (!std::isfinite(s.temperature) || s.temperature < 0 || s.top_k < 0) std::abort();
  if (!(s.top_p > 0 && s.top_p <= 1) || !(s.min_p >= 0 && s.min_p <= 1)) std::abort();
  if (!(s.repetition_penalty >= 0.01f && s.repetition_penalty <= 100)) std::abort();
  if (s.logprobs < 0 || s.logprobs > lp::kMaxLogprobs) std::abort();
  for (int32_t id : p->stop_ids) {
    if (id < 0 || id >= ctx.vocab_size) std::abort();
  }
  return 0;
}
