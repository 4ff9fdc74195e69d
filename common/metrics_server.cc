// GET /metrics alone, over HTTP (see metrics_server.h).
#include "common/metrics_server.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "common/cluster_config.h"

namespace lp {

bool BindHttp(httplib::Server& server, const std::string& listen) {
  const std::string host = HostOf(listen);
  const int port = std::atoi(listen.substr(listen.rfind(':') + 1).c_str());
  const std::string bind_host =
      host.size() > 2 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
  return server.bind_to_port(bind_host, port);
}

MetricsServer::MetricsServer() = default;

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::Status MetricsServer::Start(const std::string& listen, std::function<std::string()> text) {
  if (!IsHostPort(listen)) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics-listen ", listen, ": not host:port"));
  }
  server_ = std::make_unique<httplib::Server>();
  server_->Get("/metrics", [text](const httplib::Request&, httplib::Response& res) {
    res.set_content(text(), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (!BindHttp(*server_, listen)) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen ", listen, ": cannot listen there"));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

}  // namespace lp
