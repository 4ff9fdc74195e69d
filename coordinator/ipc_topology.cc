// The CUDA IPC links between neighbouring stages (see ipc_topology.h).
#include "coordinator/ipc_topology.h"

#include <cstdio>

namespace lp {

IpcTopology::IpcTopology(const std::vector<std::unique_ptr<WorkerLink>>& links, bool allow_ipc)
    : links_(links), allow_ipc_(allow_ipc), ipc_(links.size(), 0), instances_(links.size()) {}

void IpcTopology::NoteInstance(size_t i, uint64_t instance) {
  std::lock_guard<std::mutex> lock(mu_);
  if (i > 0 && ipc_[i - 1] && instances_[i - 1].second != instance) ipc_[i - 1] = 0;
  if (i + 1 < links_.size() && ipc_[i] && instances_[i].first != instance) ipc_[i] = 0;
}

void IpcTopology::Connect() {
  for (size_t i = 0; i + 1 < links_.size(); ++i) {
    const auto prev = links_[i]->handshake();
    const auto next = links_[i + 1]->handshake();
    const bool possible = allow_ipc_ && links_[i]->up() && links_[i + 1]->up() &&
                          prev.ipc_buffers_size() > 0 && prev.host_id() == next.host_id();
    const std::pair<uint64_t, uint64_t> instances{prev.instance_id(), next.instance_id()};
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!possible) {
        ipc_[i] = 0;
        continue;
      }
      if (ipc_[i] && instances_[i] == instances) continue;  // connected already
    }
    absl::Status s = links_[i + 1]->Connect(prev, 5000);
    std::fprintf(stderr, "coordinator: %s -> %s: %s\n", prev.name().c_str(), next.name().c_str(),
                 s.ok() ? "CUDA IPC" : ("gRPC (" + std::string(s.message()) + ")").c_str());
    std::lock_guard<std::mutex> lock(mu_);
    ipc_[i] = s.ok();
    instances_[i] = instances;
  }
}

void IpcTopology::Drop(size_t i) {
  std::lock_guard<std::mutex> lock(mu_);
  ipc_[i] = 0;
}

IpcTopology::Snapshot IpcTopology::Take() const {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot s;
  s.ipc = ipc_;
  for (const auto& [prev, next] : instances_) s.producer.push_back(prev);
  return s;
}

std::string IpcTopology::Transport(size_t i) const {
  if (i == 0) return "token ids";
  std::lock_guard<std::mutex> lock(mu_);
  return ipc_[i - 1] ? "cuda-ipc" : "grpc";
}

}  // namespace lp
