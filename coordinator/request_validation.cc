// GenerateRequest validation (see request_validation.h).
#include "coordinator/request_validation.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace lp {
namespace {

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

}  // namespace

absl::StatusOr<GenerationParams> ValidateGenerate(const layerpipe::v1::GenerateRequest& r,
                                                  const std::vector<int32_t>& prompt,
                                                  const ValidationContext& ctx,
                                                  uint64_t random_seed) {
  if (prompt.empty()) return Invalid("the prompt is empty");
  for (int32_t id : prompt) {
    if (id < 0 || id >= ctx.vocab_size) {
      return Invalid(
          absl::StrCat("token id ", id, " is outside the vocabulary [0, ", ctx.vocab_size, ")"));
    }
  }
  const int64_t n = int64_t(prompt.size());
  if (n >= ctx.max_context) {
    return Invalid(absl::StrCat("the prompt has ", n, " tokens; the context limit is ",
                                ctx.max_context, " (prompt + at least one generated token)"));
  }
  GenerationParams p;
  const int64_t room = ctx.max_context - n;
  if (r.has_max_tokens()) {
    if (r.max_tokens() <= 0) return Invalid("max_tokens must be at least 1");
    if (r.max_tokens() > room) {
      return Invalid(absl::StrCat("max_tokens ", r.max_tokens(), " does not fit: the prompt has ",
                                  n, " tokens and the context limit is ", ctx.max_context,
                                  " (at most ", room, ")"));
    }
    p.max_tokens = r.max_tokens();
  } else {
    p.max_tokens = room;
  }
  if (!std::isfinite(r.temperature()) || r.temperature() < 0) {
    return Invalid("temperature must be >= 0 (0 is greedy)");
  }
  if (r.top_k() < 0) return Invalid("top_k must be >= 0 (0 disables it)");
  if (r.has_top_p() && !(r.top_p() > 0 && r.top_p() <= 1)) {
    return Invalid(absl::StrCat("top_p must be in (0, 1], got ", r.top_p()));
  }
  if (!(r.min_p() >= 0 && r.min_p() <= 1)) return Invalid("min_p must be in [0, 1]");
  if (!std::isfinite(r.repetition_penalty()) || r.repetition_penalty() < 0 ||
      (r.repetition_penalty() > 0 && r.repetition_penalty() < 0.01f) ||
      r.repetition_penalty() > 100) {
    return Invalid("repetition_penalty must be 0 or 1 (off), or in [0.01, 100]");
  }
  if (r.logprobs() < 0 || r.logprobs() > kMaxLogprobs) {
    return Invalid(absl::StrCat("logprobs must be in [0, ", kMaxLogprobs, "]"));
  }
  if (r.stop_size() > kMaxStopStrings) {
    return Invalid(absl::StrCat("at most ", kMaxStopStrings, " stop strings"));
  }
  for (const auto& s : r.stop()) {
    if (s.empty() || s.size() > kMaxStopLength) {
      return Invalid(absl::StrCat("a stop string must have 1 to ", kMaxStopLength, " bytes"));
    }
  }
  for (int32_t id : r.stop_token_ids()) {
    if (id < 0 || id >= ctx.vocab_size) {
      return Invalid(absl::StrCat("stop token id ", id, " is outside the vocabulary"));
    }
    p.stop_ids.insert(id);
  }
  if (!r.ignore_eos()) p.stop_ids.insert(ctx.eos_ids.begin(), ctx.eos_ids.end());
  SamplingParams& s = p.sampling;
  s.temperature = r.temperature();
  s.top_k = r.top_k();
  s.top_p = r.has_top_p() ? r.top_p() : 1.0f;
  s.min_p = r.min_p();
  s.repetition_penalty = r.repetition_penalty() > 0 ? r.repetition_penalty() : 1.0f;
  s.seed = r.has_seed() ? r.seed() : random_seed;
  s.logprobs = r.logprobs();
  return p;
}

}  // namespace lp
