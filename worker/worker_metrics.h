// A worker's Prometheus metrics (prometheus-cpp), served on --metrics-listen: step time by
// kind (prefill / decode), tokens a step, the wait for the previous worker's activations (CUDA
// IPC hand-over, or gRPC chunks), and at each scrape the active sequences, KV-cache and weight
// bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace lp {

class WorkerMetrics {
 public:
  // `active_sequences` is read at each scrape.
  WorkerMetrics(uint64_t weight_bytes, uint64_t kv_cache_bytes,
                std::function<int64_t()> active_sequences);
  ~WorkerMetrics();

  // A step with sequences ran for `seconds` (the wait for its input included); `ipc_wait_s`:
  // how long it waited for the previous worker's CUDA IPC hand-over (< 0: no such input).
  void StepDone(double seconds, int64_t tokens, bool decode, double ipc_wait_s);
  // A step's activations arrived over gRPC in `seconds` (its first message to its last chunk).
  void GrpcInputReceived(double seconds);
  std::string Text();

 private:
  std::function<int64_t()> active_sequences_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Histogram* prefill_;
  prometheus::Histogram* decode_;
  prometheus::Histogram* tokens_;
  prometheus::Histogram* ipc_wait_;
  prometheus::Histogram* grpc_wait_;
  prometheus::Gauge* active_;
};

}  // namespace lp
