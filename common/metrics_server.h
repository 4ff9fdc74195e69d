// GET /metrics alone, over HTTP (cpp-httplib): Prometheus' text format from a callback. What a
// worker serves on --metrics-listen, and a coordinator without the HTTP API (whose own port
// serves /metrics otherwise).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace httplib {
class Server;
}

namespace lp {

class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();  // stops
  // Binds `listen` (host:port) and serves `text()` on its own thread; an error if it cannot.
  absl::Status Start(const std::string& listen, std::function<std::string()> text);
  void Stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// Binds `server` to `listen` ("host:port", "[v6]:port"); false when it cannot.
bool BindHttp(httplib::Server& server, const std::string& listen);

}  // namespace lp
