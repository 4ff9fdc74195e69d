// Turning a GenerateRequest into generation parameters, or an INVALID_ARGUMENT that says what
// is wrong. Pure: tested without a server.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "coordinator/request.h"
#include "layerpipe/v1/layerpipe.pb.h"

namespace lp {

struct ValidationContext {
  int64_t vocab_size = 0;
  int64_t max_context = 0;
  std::vector<int32_t> eos_ids;
};

inline constexpr int kMaxStopStrings = 16;
inline constexpr size_t kMaxStopLength = 256;

// Checks the prompt ids (non-empty, inside the vocabulary, leaving room for one token) and
// every parameter; `random_seed` is used when the request sets none.
absl::StatusOr<GenerationParams> ValidateGenerate(const layerpipe::v1::GenerateRequest& request,
                                                  const std::vector<int32_t>& prompt,
                                                  const ValidationContext& ctx,
                                                  uint64_t random_seed);

}  // namespace lp
