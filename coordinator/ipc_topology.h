// Which neighbouring stages hand activations over by CUDA IPC: link i (stage i -> i + 1) does
// when the cluster file allows it, both workers are up, the first exports a ring, they run on
// one host, and the second has opened that ring (Connect). Links whose workers restarted (a new
// instance) are stale and connected again; a link whose step failed on its IPC input falls back
// to gRPC until then. The stage driving (grpc_pipeline.h) takes a snapshot for each step.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/worker_link.h"

namespace lp {

class IpcTopology {
 public:
  // `links` are the stages in order and outlive this object.
  IpcTopology(const std::vector<std::unique_ptr<WorkerLink>>& links, bool allow_ipc);

  // Worker i answered a handshake as `instance`: the links to and from it that connected
  // another instance are stale from now on, not only once Connect below has replaced them (a
  // step submitted in between would wait on the old instance's handover).
  void NoteInstance(size_t i, uint64_t instance);
  // (Re)connects the rings of neighbours on one host whose instances changed; a link that
  // cannot be connected goes by gRPC. Handshakes must be current (the monitor calls it).
  void Connect();
  // Stage i + 1's step failed on its IPC input (the connection may be stale, a neighbour
  // restarted): link i goes by gRPC until Connect joins the rings again.
  void Drop(size_t i);

  // The links as they are now, for a step to keep the whole way through: ipc[i] says whether
  // link i is CUDA IPC, producer[i] the instance of worker i whose ring worker i + 1 has open.
  // Both have one entry per stage (the last always none).
  struct Snapshot {
    std::vector<char> ipc;
    std::vector<uint64_t> producer;
  };
  Snapshot Take() const;
  // How activations reach worker i: "cuda-ipc", "grpc", or "token ids" for the first.
  std::string Transport(size_t i) const;

 private:
  const std::vector<std::unique_ptr<WorkerLink>>& links_;
  const bool allow_ipc_;
  mutable std::mutex mu_;
  std::vector<char> ipc_;  // ipc_[i]: link i -> i + 1 uses CUDA IPC
  // The (producer, consumer) instances that link i connected.
  std::vector<std::pair<uint64_t, uint64_t>> instances_;
};

}  // namespace lp
