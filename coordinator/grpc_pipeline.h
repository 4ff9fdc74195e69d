// The pipeline over gRPC: activations chained through the workers in order, the token ids
// sampled on the last one coming back. A monitor thread handshakes every worker each period:
// a worker that stops answering marks the pipeline not ready (and unblocks a step waiting on
// it); one that answers again, agreeing with the plan, makes it ready again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "coordinator/pipeline.h"
#include "coordinator/worker_link.h"

namespace lp {

// The worker protocol's form of a step (the header message, without hidden-state bytes).
layerpipe::v1::StepRequest MakeStepRequest(const StepInput& step, uint64_t step_id);

class GrpcPipeline : public Pipeline {
 public:
  // `on_ready_change` is called (from the monitor thread) when Ready() flips.
  GrpcPipeline(std::vector<WorkerExpectation> workers, int monitor_period_ms,
               std::function<void(bool ready)> on_ready_change);
  ~GrpcPipeline() override;

  absl::Status RunStep(const StepInput& step, std::vector<SampledToken>* sampled) override;
  void Release(std::span<const int32_t> slots) override;
  bool Ready() const override { return ready_.load(); }

  const std::vector<std::unique_ptr<WorkerLink>>& links() const { return links_; }
  // The last handshake error of each worker that is down (empty when up).
  std::vector<std::string> Problems() const;

 private:
  void Monitor();
  void CheckAll();

  std::vector<std::unique_ptr<WorkerLink>> links_;
  const int period_ms_;
  std::function<void(bool)> on_ready_change_;
  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> step_id_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::string> problems_;
  std::vector<float> a_, b_;  // hidden states between stages
  std::thread monitor_;
};

}  // namespace lp
