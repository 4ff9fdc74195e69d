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

// Buffers reused from token to token (they grow to the vocabulary once).
struct SamplerScratch {
  std::vector<float> logits;
  std::vector<int32_t> ids;
  std::vector<double> probs;
};

// The random number of the draw for the token at `position` of a request seeded `seed`: a
// sequence samples the same tokens alone or in any batch.
uint64_t SampleDraw(uint64_t seed, int64_t position);

// Order of processing, as Hugging Face applies it: repetition penalty (once per distinct token
// of `history`, the sequence so far), then greedy when temperature is 0, else temperature,
// top-k, top-p, min-p (relative to the most likely token), and a draw. `position` is the
// position of the token being chosen.
Sample SampleToken(std::span<const float> logits, const SamplingParams& p,
                   std::span<const int32_t> history, int64_t position, SamplerScratch* scratch);

}  // namespace lp
