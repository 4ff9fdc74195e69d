// Token selection from one row of logits, written once on the host: the CPU backend's Sample
// and the oracle the CUDA sampling kernel is tested against. Both follow the steps of
// SampleInput (backend.h) with the arithmetic of sample_steps.h, so for the same seed and
// position they pick the same token, except where float rounding of a sum moves a top-p
// boundary or the draw lands on a probability boundary.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend.h"

namespace lp {

// Buffers reused from token to token (they grow to the vocabulary once).
struct SampleScratch {
  std::vector<float> logits;  // the penalized row
  std::vector<float> values;
  std::vector<int32_t> ids;
};

SampleResult SampleRow(const float* logits, int64_t vocab, const SampleInput& in,
                       SampleScratch* scratch);

}  // namespace lp
