// The coordinator's connection to one worker: handshake checked against the plan, the step
// stream (activations in chunks), releases, stats. A link that fails is marked down and
// reconnected by the health monitor; its stream is reopened on the next step.
#pragma once

#include <grpcpp/security/credentials.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/activation_chunks.h"
#include "coordinator/pipeline.h"
#include "layerpipe/v1/worker.grpc.pb.h"

namespace lp {

// What the coordinator expects a worker to say in its handshake.
struct WorkerExpectation {
  std::string name;
  std::string address;
  std::string device;
  std::string fingerprint;
  int64_t layer_begin = 0;
  int64_t layer_end = 0;
  bool embed = false;
  bool head = false;
  int64_t max_batch = 0;
  int64_t max_context = 0;
  int64_t max_step_tokens = 0;
  int64_t kv_blocks = 0;
  int64_t kv_block_tokens = 0;
};

// Checks a handshake against the expectation; the error says what disagrees.
absl::Status CheckHandshake(const layerpipe::v1::HandshakeResponse& got,
                            const WorkerExpectation& want);

// Checks one message of a worker's answer to a step before the coordinator uses it: sampled
// tokens only from the last worker, each in a KV-cache slot it has, with as many top
// log-probabilities as top ids and at most kMaxLogprobs of them (the API's responses index
// both). INTERNAL, naming the worker, when it breaks this.
absl::Status CheckStepAnswer(const layerpipe::v1::StepResponse& got, const WorkerExpectation& want);

class WorkerLink {
 public:
  // `credentials`: the channel's (the cluster's tls); plaintext when null.
  explicit WorkerLink(WorkerExpectation expect,
                      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  ~WorkerLink();

  const WorkerExpectation& expectation() const { return expect_; }
  bool up() const { return up_.load(); }
  // Handshakes (deadline `timeout_ms`) and marks the link up when the worker agrees. A
  // handshake that times out marks it down only the second time in a row (a busy worker may
  // be slow to answer); one that cannot connect (a dead worker) or is refused (a worker that
  // disagrees) at once.
  absl::Status Check(int timeout_ms);
  void MarkDown();
  grpc::Channel* channel() const { return channel_.get(); }

  // Step deadlines: a step sent (Send) must be answered (Receive) within a budget derived
  // from this worker's measured time per token (kStepFloor + 10 x the estimate for the step's
  // tokens; kFirstSteps before any step finished). The monitor marks an overdue link down,
  // which fails the step: a hung worker does not hold its requests.
  static constexpr std::chrono::milliseconds kStepFloor{2000};
  static constexpr std::chrono::milliseconds kFirstSteps{60000};
  // How long a step of `tokens` may take.
  std::chrono::milliseconds StepBudget(int64_t tokens) const;
  // Marks the link down if it is up and the oldest step in progress is overdue; whether it did.
  // (Only if that step's deadline still stands when it marks: a step answered meanwhile has
  // moved it.)
  bool MarkDownIfOverdue();

  // One step through this worker: Send, then Receive. Only this stage's thread calls them; a
  // stage whose output goes on by CUDA IPC lets the next stage start between the two. A second
  // step may be sent before the first's Receive (decode ahead); answers come back in order.
  absl::Status Send(const layerpipe::v1::StepRequest& header, std::span<const float> hidden_in);
  absl::Status Receive(std::vector<float>* hidden_out, std::vector<SampledToken>* sampled);
  absl::StatusOr<layerpipe::v1::StatsResponse> Stats(int timeout_ms);
  // Frees every KV-cache slot on the worker (out of band): what it holds then belongs to
  // requests that are gone (another coordinator, or ones failed while a worker was lost).
  absl::Status ReleaseAll(int timeout_ms);
  // The worker's last good handshake (its host, IPC exports, instance).
  layerpipe::v1::HandshakeResponse handshake() const;
  // Has the worker open `prev`'s CUDA IPC exports.
  absl::Status Connect(const layerpipe::v1::HandshakeResponse& prev, int timeout_ms);

 private:
  using Stream = grpc::ClientReaderWriter<layerpipe::v1::StepRequest, layerpipe::v1::StepResponse>;
  absl::Status SendOnce(const layerpipe::v1::StepRequest& header, std::span<const float> hidden_in);
  absl::Status ReceiveOnce(std::vector<float>* hidden_out, std::vector<SampledToken>* sampled);
  // An UNAVAILABLE `s` means the worker is lost: its stream is dropped, the link marked down.
  absl::Status Lost(absl::Status s);
  absl::Status LostMidStep() const;
  void ResetStream();
  void OpenStream();  // the step stream, unless open

  const WorkerExpectation expect_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<layerpipe::v1::Worker::Stub> stub_;
  std::atomic<bool> up_{false};
  std::atomic<bool> stale_{false};  // the stream was cancelled: open a new one
  int failed_checks_ = 0;           // consecutive; only the monitor thread touches it
  // The steps in progress, oldest first: when each was sent, its tokens and deadline; the
  // oldest one's deadline (0: none), which the monitor reads; and the measured milliseconds per
  // token (EWMA; < 0 until a step has finished).
  struct SentStep {
    std::chrono::steady_clock::time_point at;
    int64_t tokens = 0;
    int64_t deadline_ns = 0;
    uint64_t stream = 0;  // the stream_generation_ it went out on
  };
  std::deque<SentStep> sent_;
  std::chrono::steady_clock::time_point answered_at_;  // the last answer's
  std::atomic<int64_t> step_deadline_ns_{0};
  std::atomic<double> ms_per_token_{-1.0};
  void Answered();        // the oldest step in progress is answered, or failed
  std::mutex stream_mu_;  // guards stream_context_ against MarkDown from the monitor
  std::unique_ptr<grpc::ClientContext> stream_context_;
  std::unique_ptr<Stream> stream_;
  std::atomic<uint64_t> stream_generation_{0};  // streams opened so far
  ChunkAssembler received_;                     // the step's answer (its buffer reused)
  mutable std::mutex handshake_mu_;
  layerpipe::v1::HandshakeResponse handshake_;
};

}  // namespace lp
