// Picking the next token from a row of logits, on the last worker, so that only token ids and
// log-probabilities travel back to the coordinator. The random draw depends only on the
// request's seed and the token's position, so a sequence samples the same tokens alone or in
// any batch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/sampling_params.h"

namespace lp {

struct Sample {
  int32_t id = 0;
  float logprob = 0.0f;  // of the chosen token, under the model's unmodified distribution
  std::vector<int32_t> top_ids;
  std::vector<float> top_logprobs;
};

// Works on a copy-free view of the logits; `scratch` is reused between calls (no allocation
// once it has grown). `history` is the sequence's tokens so far (for the repetition penalty).
// `position` is the position of the token being chosen.
Sample SampleToken(std::span<const float> logits, const SamplingParams& p,
                   std::span<const int32_t> history, int64_t position,
                   std::vector<float>* scratch, std::vector<int32_t>* index_scratch);

}  // namespace lp
