// The arithmetic of token selection that the host sampler (engine/sampling.cc) and the CUDA
// kernel (engine/cuda/sample.cu) must do bit for bit alike, written once for both compilers.
// Each is correctly rounded (no contraction left to the compiler), so the two sides agree.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/random.h"
#include "common/sampling_params.h"  // PenaltyIsOn

namespace lp {

// A logit after the repetition penalty (Hugging Face's: a positive logit divided by it, a
// negative one multiplied).
LP_HOST_DEVICE inline float PenalizedLogit(float logit, float penalty) {
  return logit > 0.0f ? logit / penalty : logit * penalty;
}

// The smallest logit that min-p keeps: a token stays when its probability after temperature is
// at least min_p times the largest, that is when logit >= max_logit + temperature * log(min_p).
// `log_min_p` is computed once on the host (std::log), so both sides start from the same number.
LP_HOST_DEVICE inline float MinPLogit(float max_logit, float temperature, float log_min_p) {
  return fmaf(temperature, log_min_p, max_logit);
}

// Maps a float to an unsigned key of the same order (for threshold searches).
LP_HOST_DEVICE inline uint32_t OrderedKey(float f) {
#ifdef __CUDA_ARCH__
  const uint32_t b = __float_as_uint(f);
#else
  uint32_t b;
  std::memcpy(&b, &f, 4);
#endif
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

}  // namespace lp
