// What the coordinator tells operators: Prometheus metrics (prometheus-cpp's registry, served as
// text on the HTTP API's GET /metrics) and one log line per finished request (spdlog, text or
// JSON). Both public faces report through it: InferenceService::Start a refused request,
// GenerationStream a request that ended, the scheduler each step.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/kv_block_pool.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus
namespace spdlog {
class logger;
}

namespace lp {

// Who asked: the face ("grpc" / "http") and the request id (the client's x-request-id, else
// one made up), for the log line.
struct RequestTag {
  std::string api;
  std::string id;
};

// How a request ended, for the metrics and the log line.
struct RequestEnd {
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string finish;  // "stop" / "length"; empty when it did not finish
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double ttft_s = -1;  // time to the first token; < 0: none came
  double total_s = 0;
};

class Telemetry {
 public:
  // Read at each scrape: waiting, running and paused requests, resumes since start, each
  // worker's active sequences.
  struct Sources {
    std::function<int64_t()> queued, running, paused, resumed;
    std::function<KvBlockReport()> kv_blocks;
    std::function<std::vector<std::pair<std::string, int64_t>>()> worker_sequences;
  };
  // `json_logs`: log lines as JSON objects instead of key=value text.
  Telemetry(Sources sources, bool json_logs);
  ~Telemetry();

  void RequestEnded(const RequestTag& tag, const RequestEnd& end);
  // A pipeline step (micro-batch) came back after `seconds`, carrying `tokens`.
  void StepDone(double seconds, int64_t tokens, bool decode);
  // The metrics in Prometheus' text exposition format.
  std::string Text();

 private:
  Sources sources_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* tpot_;
  prometheus::Histogram* duration_;
  prometheus::Histogram* prefill_step_;
  prometheus::Histogram* decode_step_;
  prometheus::Histogram* step_tokens_;
  prometheus::Gauge* queued_;
  prometheus::Gauge* running_;
  prometheus::Gauge* paused_;
  prometheus::Counter* resumed_;
  prometheus::Family<prometheus::Gauge>* worker_sequences_;
  prometheus::Family<prometheus::Gauge>* kv_blocks_;
  prometheus::Counter* prefix_hit_tokens_;
  prometheus::Counter* prefill_tokens_;
  prometheus::Counter* preempted_;
  std::shared_ptr<spdlog::logger> log_;
  bool json_logs_;
};

}  // namespace lp
