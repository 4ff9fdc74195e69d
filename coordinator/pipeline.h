// The scheduler's view of the workers: something that runs one step of a batch through every
// stage in pipeline order and returns the tokens sampled on the last. The gRPC implementation
// is grpc_pipeline.h; tests may run the scheduler over an in-process one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "common/sampling_params.h"

namespace lp {

struct StepSeq {
  int32_t slot = 0;
  int32_t start_pos = 0;
  int32_t n_tokens = 0;
  bool sample = false;  // pick the next token after this chunk
  SamplingParams sampling;
};

struct StepInput {
  std::vector<StepSeq> seqs;
  std::vector<int32_t> ids;  // the step's tokens, back to back in seqs order
};

struct SampledToken {
  int32_t slot = 0;
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<int32_t> top_ids;
  std::vector<float> top_logprobs;
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  // Runs the step through every stage. UNAVAILABLE when a stage cannot be reached: the KV
  // caches of the step's sequences are then lost.
  virtual absl::Status RunStep(const StepInput& step, std::vector<SampledToken>* sampled) = 0;
  // Frees KV-cache slots on every stage (best effort: an unreachable stage lost them anyway).
  virtual void Release(std::span<const int32_t> slots) = 0;
  // True while every stage is reachable and agrees with the plan.
  virtual bool Ready() const = 0;
};

}  // namespace lp
