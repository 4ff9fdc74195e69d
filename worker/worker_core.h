// What a worker does, apart from the network: runs steps on its slice, samples on the last
// one, tracks which KV-cache slots hold sequences, answers the handshake. The gRPC service
// (worker_service.h) only moves messages in and out of it, so it is tested without a network.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/protocol.h"
#include "engine/slice.h"
#include "layerpipe/v1/worker.pb.h"
#include "worker/handover.h"
#include "worker/ipc_ring.h"
#include "worker/worker_metrics.h"

namespace lp {

struct WorkerIdentity {
  std::string name;
  std::string device;       // "cpu:0", "cuda:1"
  std::string fingerprint;  // Checkpoint::Fingerprint()
  std::string dtype;        // weight type as loaded
};

class WorkerCore {
 public:
  // `export_ipc`: export a CUDA IPC ring for the next worker (when it is a GPU worker of this
  // host and the cluster's transport allows it; see PlannedTransport).
  WorkerCore(std::unique_ptr<Slice> slice, WorkerIdentity identity, bool export_ipc = false);
  // Steps are reported to `metrics` from now on (set before serving; null: none).
  void SetMetrics(WorkerMetrics* metrics) { metrics_ = metrics; }
  WorkerMetrics* metrics() const { return metrics_; }

  layerpipe::v1::HandshakeResponse Handshake() const;
  // Frees the request's release_slots, then runs its step (if it has sequences). `hidden_in`
  // is the previous stage's output (empty on the first worker). Non-last workers fill
  // `hidden_out`; the last fills `response->sampled`.
  absl::Status Step(const layerpipe::v1::StepRequest& request, std::span<const float> hidden_in,
                    std::vector<float>* hidden_out, layerpipe::v1::StepResponse* response);
  void Release(std::span<const int32_t> slots);
  // Opens the previous worker's CUDA IPC exports (see worker.proto's Connect).
  absl::Status Connect(const layerpipe::v1::ConnectRequest& request);
  layerpipe::v1::StatsResponse Stats() const;

  const Slice& slice() const { return *slice_; }

 private:
  struct SlotState {
    bool active = false;
    int64_t positions = 0;  // positions held in the KV cache
    // The last worker's last sampled id and the position it goes to (kSampledBefore's value).
    int32_t sampled = 0;
    int64_t sampled_at = -1;
    // The last worker's repetition penalty: the distinct tokens seen (sized at load).
    std::vector<int32_t> seen;
    std::vector<bool> is_seen;  // by id
    void See(int32_t id) {
      if (id < 0 || size_t(id) >= is_seen.size() || is_seen[size_t(id)]) return;
      is_seen[size_t(id)] = true;
      seen.push_back(id);
    }
    void ForgetSeen() {
      for (int32_t id : seen) is_seen[size_t(id)] = false;
      seen.clear();
    }
  };

  // Step's work once the lock is held (Step then posts the IPC handover, whatever happened).
  absl::Status StepLocked(const layerpipe::v1::StepRequest& request,
                          std::span<const float> hidden_in, std::vector<float>* hidden_out,
                          layerpipe::v1::StepResponse* response);
  void ReleaseLocked(int32_t slot);
  // ids_ = the request's ids, each kSampledBefore replaced by its slot's last sampled id (which
  // must be for the chunk's position, on a worker that embeds and samples).
  absl::Status FillSampledBefore(const layerpipe::v1::StepRequest& request);
  // The last worker's sampling after Forward, by the backend (on the GPU for CUDA workers:
  // only ids and log-probabilities leave the device).
  absl::Status SampleStep(const layerpipe::v1::StepRequest& request,
                          layerpipe::v1::StepResponse* response);

  std::unique_ptr<Slice> slice_;
  WorkerIdentity identity_;
  const std::string host_id_;
  uint64_t instance_id_ = 0;
  // CUDA IPC to the next worker (none: it hands activations over in host memory only), and
  // the signal words that tell it a slot is queued.
  std::unique_ptr<IpcRing> ring_out_;
  std::unique_ptr<Handover> handover_out_;
  // The previous worker's ring and words, open after Connect (guarded by mu_).
  std::unique_ptr<IpcRing> ring_in_;
  std::unique_ptr<Handover> handover_in_;
  uint64_t ipc_peer_instance_ = 0;  // whose
  mutable std::mutex mu_;           // one step at a time; guards slots_, written_blocks_ and steps_
  std::vector<SlotState> slots_;
  // KV blocks a step of this process has written: a sequence may start after a cached prefix
  // only in those (a restarted worker holds none).
  std::vector<bool> written_blocks_;
  int64_t steps_ = 0;
  StepLayout layout_;
  std::vector<int32_t> ids_;  // a step's ids, kSampledBefore filled in
  std::vector<SampleInput> sample_inputs_;
  std::vector<SampleResult> sample_results_;
  WorkerMetrics* metrics_ = nullptr;
  double ipc_wait_s_ = -1;  // the current step's wait for its CUDA IPC input (< 0: none)
};

}  // namespace lp
