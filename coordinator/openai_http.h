// The OpenAI-compatible HTTP API in the coordinator (coordinator.http_listen): POST
// /v1/chat/completions and /v1/completions (one JSON body, or server-sent events with
// `stream: true`), GET /v1/models, GET /health and GET /metrics (Prometheus), errors in the
// reference API's shape. A
// request becomes a GenerateRequest and runs through InferenceService::Start: the same
// validation, scheduling and output as the gRPC API. HTTP by cpp-httplib (Debian's
// libcpp-httplib-dev), on its own thread pool.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "coordinator/inference_service.h"

namespace httplib {
class Server;
}

namespace lp {

class OpenAiHttp {
 public:
  // `model_name` is what /v1/models lists and requests must name; `serving` whether the
  // cluster serves now (GET /health).
  // GET /metrics serves `telemetry`'s text (may be null: 404).
  OpenAiHttp(InferenceService* service, std::string model_name, std::function<bool()> serving,
             Telemetry* telemetry);
  ~OpenAiHttp();  // stops

  // Binds `listen` (host:port) and serves on its own threads; an error if it cannot bind.
  absl::Status Start(const std::string& listen);
  void Stop();

 private:
  InferenceService* service_;
  const std::string model_name_;
  const std::function<bool()> serving_;
  Telemetry* telemetry_;
  const int64_t created_;  // when the server started: /v1/models' `created`
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace lp
