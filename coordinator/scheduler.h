// The scheduler thread: drives a SchedulerCore (scheduler_core.h) against the pipeline. At
// every step boundary it asks the core for the micro-batches to run, submits them, waits for
// the oldest to come back and hands its result to the core; it waits for work when there is
// none. It is the only thread that talks to the pipeline. Submit() is what the RPC handlers
// call.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/pipeline.h"
#include "coordinator/request.h"
#include "coordinator/scheduler_core.h"

namespace lp {

class Scheduler {
 public:
  // Told of each step (micro-batch) when its result comes back: seconds since it was
  // submitted, its tokens, whether every sequence in it decoded one token.
  using StepObserver = std::function<void(double seconds, int64_t tokens, bool decode)>;
  Scheduler(Pipeline* pipeline, const SchedulerLimits& limits, StepObserver on_step = {});
  // Lets the micro-batches in flight come back, then fails what is left.
  ~Scheduler();

  // Queues a request; RESOURCE_EXHAUSTED when the queue is full (requests cancelled while
  // waiting and those that free KV slots take at once do not count), UNAVAILABLE when the
  // pipeline is not ready (unless the core holds an outage it may resume from). The prompt
  // must already be validated against the limits.
  absl::StatusOr<std::shared_ptr<Request>> Submit(std::vector<int32_t> prompt,
                                                  GenerationParams params);
  const SchedulerLimits& limits() const { return core_.limits(); }
  // From now on Submit refuses with UNAVAILABLE; what is queued or running goes on.
  void Drain() { draining_ = true; }
  bool draining() const { return draining_; }
  int64_t queued() const { return core_.queued(); }
  int64_t active() const { return core_.active(); }
  int64_t paused() const { return core_.paused(); }
  int64_t resumed() const { return core_.resumed(); }
  KvBlockReport kv_blocks() const { return core_.kv_blocks(); }

 private:
  // How often an outage's end is looked for when nothing is in flight (the pipeline's health
  // monitor handshakes every second).
  static constexpr std::chrono::milliseconds kOutagePoll{10};
  void Loop();

  Pipeline* pipeline_;
  SchedulerCore core_;
  StepObserver on_step_;
  std::mutex mu_;
  std::condition_variable cv_;  // work arrived, or stopping
  bool stopping_ = false;
  std::atomic<bool> draining_{false};
  std::thread thread_;
};

}  // namespace lp
