// The workers' health: a thread that handshakes every worker each period (and at once when a
// worker's connection changes state, e.g. a worker that dies while idle), marks down a worker
// whose step is overdue (a hung worker), keeps the IPC topology current, and says whether the
// pipeline is ready: every worker answers and agrees with the plan. A worker that stops
// answering makes it not ready (its link is marked down, which unblocks a step waiting on it);
// one that answers again, agreeing, makes it ready again.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/ipc_topology.h"
#include "coordinator/worker_link.h"

namespace lp {

class HealthMonitor {
 public:
  // `links` and `ipc` outlive the monitor. `on_ready_change` is called (from the monitor thread
  // or whoever calls UpdateReady, never two at once) when Ready() flips.
  HealthMonitor(const std::vector<std::unique_ptr<WorkerLink>>& links, IpcTopology* ipc,
                int period_ms, std::function<void(bool ready)> on_ready_change);
  ~HealthMonitor();

  // Handshakes every worker once, connects the IPC links it can, updates readiness. The
  // monitor thread does it every period; call it once before Start to begin ready.
  void CheckAll();
  void Start();
  // Stops and joins the thread (also done by the destructor).
  void Stop();

  bool Ready() const { return ready_.load(); }
  // Ready() from every link's state; calls on_ready_change on a flip. Stages call it when a
  // step failed and marked a link down.
  void UpdateReady();
  // The last handshake error of each worker that is down (empty when up).
  std::vector<std::string> Problems() const;

 private:
  void Run();

  const std::vector<std::unique_ptr<WorkerLink>>& links_;
  IpcTopology* const ipc_;
  const int period_ms_;
  std::function<void(bool)> on_ready_change_;
  std::atomic<bool> ready_{false};
  std::mutex ready_mu_;  // one UpdateReady at a time
  mutable std::mutex mu_;
  std::vector<std::string> problems_;  // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace lp
