// The pipeline over gRPC: activations chained through the workers in order, the token ids
// sampled on the last one coming back. One thread per stage drives its worker, so while stage
// 1 runs micro-batch k, stage 0 already runs micro-batch k + 1; each micro-batch in flight
// carries its own activation buffer. Between two GPU workers of one host (when the cluster
// file allows) activations cross by CUDA IPC (which links do: ipc_topology.h): a step only
// tells the next worker which ring slot to read, and is handed to the next stage before this
// one has answered. Whether every worker is up, and so whether the pipeline is ready, is the
// health monitor's (health_monitor.h); this file drives the stages.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "coordinator/health_monitor.h"
#include "coordinator/ipc_topology.h"
#include "coordinator/pipeline.h"
#include "coordinator/worker_link.h"

namespace lp {

// The worker protocol's form of a step (the header message, without hidden-state bytes).
layerpipe::v1::StepRequest MakeStepRequest(const StepInput& step, uint64_t step_id);

class GrpcPipeline : public Pipeline {
 public:
  struct Options {
    int monitor_period_ms = 1000;  // how often every worker is handshaken
    bool allow_ipc = true;         // neighbours on one host may use CUDA IPC
    bool decode_ahead = true;      // a pipeline of one stage may take a decode step ahead
  };
  // `on_ready_change` is called (from the monitor or a stage thread, never two at once) when
  // Ready() flips. `credentials`: every link's (plaintext when null).
  GrpcPipeline(std::vector<WorkerExpectation> workers, Options options,
               std::function<void(bool ready)> on_ready_change,
               std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  ~GrpcPipeline() override;

  int depth() const override { return depth_; }
  void Submit(uint64_t tag, StepInput step) override;
  bool Next(int timeout_ms, StepResult* result) override;
  bool Ready() const override { return monitor_->Ready(); }
  bool decode_ahead() const override { return decode_ahead_; }

  const std::vector<std::unique_ptr<WorkerLink>>& links() const { return links_; }
  // The last handshake error of each worker that is down (empty when up).
  std::vector<std::string> Problems() const { return monitor_->Problems(); }
  // How activations reach worker i: "cuda-ipc", "grpc", or "token ids" for the first.
  std::string Transport(size_t i) const { return ipc_->Transport(i); }

 private:
  // A micro-batch on its way through the stages. A stage whose output goes on by CUDA IPC
  // hands the flight to the next stage as soon as it has sent its request (the workers order
  // the hop between them, see worker/handover.h), and takes its own answer after: the flight
  // is then shared, and leaves the last stage only when every stage has answered.
  struct Flight {
    StepResult result;  // its status: of the stages that answered before handing it on
    layerpipe::v1::StepRequest header;
    std::vector<float> hidden;           // the previous stage's output
    std::vector<char> ipc;               // ipc[i]: stage i hands over to i + 1 by CUDA IPC
    std::vector<uint64_t> ipc_producer;  // the instance whose ring stage i + 1 has open
    // The answers of stages that handed the flight on before they had them.
    std::mutex mu;
    std::condition_variable answered;
    int pending = 0;
    absl::Status late_status;
  };
  // A queue between two stage threads (or the scheduler and the first / last stage).
  class Queue {
   public:
    void Push(std::shared_ptr<Flight> f);
    // nullptr on timeout or when closed.
    std::shared_ptr<Flight> Pop(std::chrono::microseconds timeout);
    std::shared_ptr<Flight> Pop(int timeout_ms) {
      return Pop(std::chrono::milliseconds(timeout_ms));
    }
    void Close();

   private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Flight>> items_;
    bool closed_ = false;
  };
  void RunStage(size_t i);
  // The thread of a pipeline's only stage (decode ahead): sends a step, then the next one if it
  // comes within kAheadWait while the worker runs the first, then takes the first's answer.
  void RunOnlyStage();
  static constexpr std::chrono::microseconds kAheadWait{500};
  // Runs flight `f` on stage i's worker (handing it on early where the output goes by IPC).
  // False when it was handed on already.
  bool StageStep(size_t i, const std::shared_ptr<Flight>& f, std::vector<float>* out);
  // After stage i's step failed: readiness, and an IPC input link back to gRPC.
  void NoteFailure(size_t i, bool ipc_in);

  std::vector<std::unique_ptr<WorkerLink>> links_;
  int depth_ = 1;  // distinct (host, device) pairs among the stages, a host's CPUs as one
  bool decode_ahead_ = false;  // Options::decode_ahead, with one stage only
  std::unique_ptr<IpcTopology> ipc_;
  std::unique_ptr<HealthMonitor> monitor_;
  // Step ids never repeat, not even across coordinator restarts: the workers' IPC handover
  // words (worker/handover.h) must not match a step of an earlier coordinator.
  std::atomic<uint64_t> step_id_{
      uint64_t(std::chrono::system_clock::now().time_since_epoch() / std::chrono::nanoseconds(1))};
  std::atomic<bool> stopping_{false};
  std::vector<std::unique_ptr<Queue>> queues_;  // queues_[i] feeds stage i; the last is done
  std::vector<std::thread> stage_threads_;
};

}  // namespace lp
