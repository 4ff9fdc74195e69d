// Continuous batching with micro-batches in flight. Requests wait in a bounded queue; at every
// step boundary waiting ones join while KV-cache slots are free, finished and cancelled ones
// leave. The running sequences are spread over up to one micro-batch per pipeline stage, so
// every stage works at once; a micro-batch carries one decode token for each of its sequences
// plus prefill chunks of new prompts within the step's token budget. A sequence is never in
// two micro-batches at once. The scheduler thread is the only one that talks to the pipeline.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/pipeline.h"

namespace lp {

struct SchedulerLimits {
  int64_t max_batch = 16;         // sequences at once (KV-cache slots)
  int64_t max_context = 4096;     // prompt + completion tokens per sequence
  int64_t max_step_tokens = 2048; // tokens per step, all sequences together
  int64_t queue_capacity = 256;   // waiting requests
};

enum class FinishReason { kNone, kLength, kStop };

struct GenerationParams {
  int64_t max_tokens = 0;  // >= 1 (the service resolves "unset")
  SamplingParams sampling;
  std::set<int32_t> stop_ids;  // EOS ids (unless ignored) and the request's stop ids
};

// One request's side of the exchange: the scheduler appends, the RPC handler takes.
class Request {
 public:
  Request(std::vector<int32_t> prompt, GenerationParams params)
      : prompt_(std::move(prompt)), params_(std::move(params)) {}

  struct Events {
    std::vector<SampledToken> tokens;
    FinishReason finish = FinishReason::kNone;
    absl::Status error;  // set when the request failed
    bool done = false;   // finished or failed: nothing more will come
  };
  // Waits up to `timeout_ms` for something new and takes it.
  Events Take(int timeout_ms);
  // Asks the scheduler to drop the request at the next step boundary.
  void Cancel();

  const std::vector<int32_t>& prompt() const { return prompt_; }
  const GenerationParams& params() const { return params_; }

 private:
  friend class Scheduler;
  void Push(const SampledToken& t);
  void Finish(FinishReason reason);
  void Fail(const absl::Status& status);
  bool cancelled() const;
  bool done() const;

  const std::vector<int32_t> prompt_;
  const GenerationParams params_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SampledToken> tokens_;  // not yet taken
  FinishReason finish_ = FinishReason::kNone;
  absl::Status error_;
  bool done_ = false;
  bool reported_ = false;  // the end was handed to Take
  bool cancelled_ = false;
};

class Scheduler {
 public:
  Scheduler(Pipeline* pipeline, const SchedulerLimits& limits);
  ~Scheduler();

  // Queues a request; RESOURCE_EXHAUSTED when the queue is full (requests cancelled while
  // waiting and those that free KV slots take at once do not count), UNAVAILABLE when the
  // pipeline is not ready. The prompt must already be validated against the limits.
  absl::StatusOr<std::shared_ptr<Request>> Submit(std::vector<int32_t> prompt,
                                                  GenerationParams params);
  const SchedulerLimits& limits() const { return limits_; }
  int64_t queued() const;
  int64_t active() const;

 private:
  struct Active {
    std::shared_ptr<Request> request;
    int32_t slot = 0;
    int64_t prefilled = 0;               // prompt tokens already in the KV cache
    std::vector<int32_t> generated;
    bool in_flight = false;              // in a micro-batch not yet back
  };
  void Loop();
  void Admit();
  // Removes requests cancelled while they waited (their clients are gone). Holds mu_.
  void DropCancelledLocked();
  // Builds a micro-batch of at most `max_seqs` sequences not in flight, carrying the pending
  // slot releases; false when there is nothing to send.
  bool BuildStep(int64_t max_seqs, StepInput* step);
  void Apply(const StepResult& result);
  void Retire();
  void FailActive(const absl::Status& status);

  Pipeline* pipeline_;
  const SchedulerLimits limits_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> queue_;
  bool stopping_ = false;
  // Owned by the scheduler thread.
  std::vector<Active> active_;
  std::vector<int32_t> free_slots_;
  std::vector<int32_t> to_release_;  // freed slots the workers have not been told of yet
  int in_flight_ = 0;  // micro-batches submitted and not yet back
  std::thread thread_;
};

}  // namespace lp
