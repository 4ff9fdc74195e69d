// The scheduler's view of the workers: something that runs one step of a batch through every
// stage in pipeline order and returns the tokens sampled on the last. The gRPC implementation
// is grpc_pipeline.h; tests may run the scheduler over an in-process one.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/seq_chunk.h"

namespace lp {

struct StepInput {
  std::vector<SeqChunk> seqs;
  std::vector<int32_t> ids;  // the step's tokens, back to back in seqs order
  // KV-cache slots every stage frees before running this step (finished sequences). A step may
  // carry only releases.
  std::vector<int32_t> release_slots;
  std::vector<std::string> request_ids;  // per seqs entry (may be empty): for worker errors
};

struct SampledToken {
  int32_t slot = 0;
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<int32_t> top_ids;
  std::vector<float> top_logprobs;
};

struct StepResult {
  uint64_t tag = 0;
  absl::Status status;  // UNAVAILABLE when a stage could not be reached
  std::vector<SampledToken> sampled;
};

// Steps are submitted and their results taken in order. Up to depth() steps (micro-batches)
// may be in flight, each on another stage, so that every device works at once.
class Pipeline {
 public:
  virtual ~Pipeline() = default;
  // How many micro-batches can usefully be in flight: one per device that runs stages (a
  // host's CPU workers count as one: they share its memory bandwidth). Stages sharing a device
  // run one at a time anyway, and splitting the batch further would only make every stage read
  // its weights once more per token.
  virtual int depth() const = 0;
  // Starts a step through every stage. `tag` comes back with its result. Callers number their
  // steps 0, 1, 2, ... and keep at most depth() in flight (one more with decode_ahead(), which
  // has no ring): GrpcPipeline's CUDA IPC ring slots cycle with the tag.
  virtual void Submit(uint64_t tag, StepInput step) = 0;
  // Waits up to `timeout_ms` for the oldest step in flight; false on timeout.
  virtual bool Next(int timeout_ms, StepResult* result) = 0;
  // True while every stage is reachable and agrees with the plan.
  virtual bool Ready() const = 0;
  // Whether steps may carry kSampledBefore decode ids (scheduler_core.h, "Decode ahead"): one
  // stage, which embeds and samples, and a second step in flight goes out before the first is
  // answered.
  virtual bool decode_ahead() const { return false; }
};

// A pipeline that runs each step to the end inside Submit (one in flight): for in-process
// stages and tests.
class SyncPipeline : public Pipeline {
 public:
  int depth() const override { return 1; }
  void Submit(uint64_t tag, StepInput step) override {
    StepResult r;
    r.tag = tag;
    r.status = RunStep(step, &r.sampled);
    done_.push_back(std::move(r));
  }
  bool Next(int, StepResult* result) override {
    if (done_.empty()) return false;
    *result = std::move(done_.front());
    done_.erase(done_.begin());
    return true;
  }

 protected:
  virtual absl::Status RunStep(const StepInput& step, std::vector<SampledToken>* sampled) = 0;

 private:
  std::vector<StepResult> done_;
};

}  // namespace lp
