// The worker's gRPC face: the internal Worker service over a WorkerCore. Activations arrive
// and leave in chunks of at most kChunkBytes, under gRPC's message limits.
#pragma once

#include <atomic>
#include <string>

#include "layerpipe/v1/worker.grpc.pb.h"
#include "worker/worker_core.h"

namespace lp {

class WorkerService final : public layerpipe::v1::Worker::Service {
 public:
  // Until SetCore, every call answers UNAVAILABLE ("loading").
  WorkerService() = default;
  explicit WorkerService(WorkerCore* core) : core_(core) {}
  void SetCore(WorkerCore* core) { core_ = core; }
  // Before the server starts, with mutual TLS: every call must come from a peer whose
  // certificate names `name` (the coordinator): PERMISSION_DENIED otherwise.
  void RequirePeer(std::string name) { peer_name_ = std::move(name); }
  // Shutting down: the step in progress finishes and is answered; from then on steps end
  // their stream with UNAVAILABLE and handshakes are refused, so the coordinator pauses this
  // worker's sequences (and resumes them on its successor). Returns once no step is running,
  // or after `timeout_ms`.
  void Stop(int timeout_ms);

  grpc::Status Handshake(grpc::ServerContext*, const layerpipe::v1::HandshakeRequest*,
                         layerpipe::v1::HandshakeResponse*) override;
  grpc::Status Step(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<layerpipe::v1::StepResponse, layerpipe::v1::StepRequest>*) override;
  grpc::Status Release(grpc::ServerContext*, const layerpipe::v1::ReleaseRequest*,
                       layerpipe::v1::ReleaseResponse*) override;
  grpc::Status Stats(grpc::ServerContext*, const layerpipe::v1::StatsRequest*,
                     layerpipe::v1::StatsResponse*) override;
  grpc::Status Connect(grpc::ServerContext*, const layerpipe::v1::ConnectRequest*,
                       layerpipe::v1::ConnectResponse*) override;

 private:
  // PERMISSION_DENIED unless the caller is the peer RequirePeer named (OK without one).
  grpc::Status CheckPeer(const grpc::ServerContext& ctx) const;

  std::string peer_name_;
  std::atomic<WorkerCore*> core_{nullptr};
  std::atomic<bool> stopping_{false};
  std::atomic<int> steps_running_{0};
};

}  // namespace lp
