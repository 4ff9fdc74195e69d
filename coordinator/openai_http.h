// The OpenAI-compatible HTTP API in the coordinator (coordinator.http_listen): POST
// /v1/chat/completions and /v1/completions (one JSON body, or server-sent events with
// `stream: true`), GET /v1/models, GET /health and GET /metrics (Prometheus), errors in the
// reference API's shape. A
// request becomes a GenerateRequest and runs through InferenceService::Start: the same
// validation, scheduling and output as the gRPC API. HTTP by cpp-httplib (Debian's
// libcpp-httplib-dev), on its own thread pool; HTTPS with coordinator.api_tls. Where the
// service asks for API tokens, every path but /health needs `Authorization: Bearer TOKEN`
// (401 otherwise).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "common/cluster_config.h"
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

  // Binds `listen` (host:port) and serves on its own threads, over HTTPS when `tls` has a
  // certificate (with tls.ca, clients must show one from that CA); an error if it cannot bind
  // or read the certificate.
  absl::Status Start(const std::string& listen, const TlsFiles& tls = {});
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
