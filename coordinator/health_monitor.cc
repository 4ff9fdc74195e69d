// The workers' health (see health_monitor.h).
#include "coordinator/health_monitor.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace lp {

HealthMonitor::HealthMonitor(const std::vector<std::unique_ptr<WorkerLink>>& links,
                             IpcTopology* ipc, int period_ms,
                             std::function<void(bool)> on_ready_change)
    : links_(links),
      ipc_(ipc),
      period_ms_(period_ms),
      on_ready_change_(std::move(on_ready_change)),
      problems_(links.size()) {}

HealthMonitor::~HealthMonitor() { Stop(); }

void HealthMonitor::Start() {
  thread_ = std::thread([this] { Run(); });
}

void HealthMonitor::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void HealthMonitor::CheckAll() {
  for (size_t i = 0; i < links_.size(); ++i) {
    absl::Status s = links_[i]->Check(std::max(200, period_ms_));
    {
      std::lock_guard<std::mutex> lock(mu_);
      const std::string problem = s.ok() ? "" : std::string(s.message());
      if (problem != problems_[i] && !problem.empty()) {
        std::fprintf(stderr, "coordinator: %s\n", problem.c_str());
      }
      problems_[i] = problem;
    }
    ipc_->NoteInstance(i, links_[i]->handshake().instance_id());
  }
  ipc_->Connect();
  UpdateReady();
}

void HealthMonitor::UpdateReady() {
  std::lock_guard<std::mutex> lock(ready_mu_);
  bool all = true;
  for (const auto& link : links_) all = all && link->up();
  if (all && !ready_.load()) {
    // Becoming ready (at start, or after a lost worker): no request has a sequence on any
    // worker that it goes on with (the scheduler paused or failed them all, and resumes the
    // paused ones from position 0), so what the KV caches hold belongs to requests that are
    // gone or start again. Free it, so that status shows the load that is.
    for (const auto& link : links_) {
      if (auto s = link->ReleaseAll(std::max(200, period_ms_)); !s.ok()) all = false;
    }
  }
  if (ready_.exchange(all) != all && on_ready_change_) on_ready_change_(all);
}

std::vector<std::string> HealthMonitor::Problems() const {
  std::lock_guard<std::mutex> lock(mu_);
  return problems_;
}

// Handshakes every worker each period, at once when a worker's connection changes state (a
// worker that dies while idle closes it), and every 50 ms fails overdue steps (a hung worker).
void HealthMonitor::Run() {
  grpc::CompletionQueue cq;
  auto watch = [&](size_t i) {  // short deadlines: the queue drains quickly at shutdown
    grpc::Channel* c = links_[i]->channel();
    c->NotifyOnStateChange(c->GetState(false),
                           std::chrono::system_clock::now() + std::chrono::seconds(1), &cq,
                           reinterpret_cast<void*>(i));
  };
  for (size_t i = 0; i < links_.size(); ++i) watch(i);
  auto next_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(period_ms_);
  while (!stopping_) {
    bool changed = false;
    void* tag = nullptr;
    bool ok = false;
    const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(50);
    while (cq.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT) {
      changed = changed || ok;  // ok: the state changed (else the watch timed out)
      watch(reinterpret_cast<size_t>(tag));
    }
    for (const auto& link : links_) {
      // Marking down cancels its stream: the waiting stage fails the step.
      if (!link->MarkDownIfOverdue()) continue;
      std::fprintf(stderr, "coordinator: worker '%s' did not answer a step in time: marked down\n",
                   link->expectation().name.c_str());
      UpdateReady();
    }
    if (changed || std::chrono::steady_clock::now() >= next_check) {
      CheckAll();
      next_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(period_ms_);
    }
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace lp
