// How a request wants its next token chosen; the coordinator fills it in, the last worker
// applies it (engine/backend.h: SampleInput; engine/sampling.h, engine/cuda/sample.cu).
#pragma once

#include <cstdint>

#include "common/random.h"  // LP_HOST_DEVICE

namespace lp {

// Log-probabilities a request may ask for per step (the GPU sampler's limit too).
inline constexpr int32_t kMaxLogprobs = 20;

struct SamplingParams {
  float temperature = 0.0f;         // 0: greedy
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  uint64_t seed = 0;
  int32_t logprobs = 0;  // top-K log-probabilities to return
};

// Whether a repetition penalty changes anything (0 and 1 both mean off).
LP_HOST_DEVICE inline bool PenaltyIsOn(float penalty) { return penalty > 0.0f && penalty != 1.0f; }

}  // namespace lp
