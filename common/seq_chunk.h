// One sequence's share of a step, as the coordinator schedules it, the worker protocol carries
// it (worker.proto's SeqChunk) and the engine runs it (StepLayout): `n_tokens` new tokens at
// positions [start_pos, start_pos + n_tokens), attending to all earlier positions of KV-cache
// `slot`, whose KV cache lies in `blocks` (engine/backend.h's KvCacheShape). A prefill chunk and a
// single decode token are the same thing with different n_tokens, so prefill and decode sequences
// may share a step.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/sampling_params.h"

namespace lp {

struct SeqChunk {
  int32_t slot = 0;
  int32_t start_pos = 0;
  int32_t n_tokens = 0;
  // On a chunk that ends its prompt, or a decode token: how the last stage picks the next
  // token (absent: a prefill chunk that does not end the prompt). Slices ignore it.
  std::optional<SamplingParams> sampling;
  // The sequence's KV-cache blocks, covering at least positions [0, start_pos + n_tokens); the
  // first start_pos / block_tokens of them may be shared with other sequences (a cached
  // prefix), read only. Empty: the slot's own contiguous run of blocks (engine/backend.h).
  std::vector<int32_t> blocks;
  // A new sequence's first chunk after a cached prefix, with the repetition penalty on: the
  // prefix's start_pos ids, for the last stage's penalty (worker.proto). Slices ignore it.
  std::vector<int32_t> prefix_ids;
};

}  // namespace lp
