// grpc.health.v1, starting NOT_SERVING (see health_service.h).
#include "common/health_service.h"

#include <chrono>

namespace lp {

using grpc::health::v1::HealthCheckResponse;

HealthService::HealthService(const std::string& service_name) {
  statuses_[""] = HealthCheckResponse::NOT_SERVING;
  statuses_[service_name] = HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  for (auto& [name, status] : statuses_) {
    status = serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
  }
  changed_.notify_all();
}

void HealthService::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, status] : statuses_) status = HealthCheckResponse::NOT_SERVING;
  shut_down_ = true;
  changed_.notify_all();
}

HealthService::Status HealthService::StatusOf(const std::string& service) const {
  const auto it = statuses_.find(service);
  return it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN : it->second;
}

grpc::Status HealthService::Check(grpc::ServerContext*,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  const Status status = StatusOf(request->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service " + request->service());
  }
  response->set_status(status);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::ServerWriter<HealthCheckResponse>* writer) {
  std::unique_lock<std::mutex> lock(mu_);
  Status sent = HealthCheckResponse::UNKNOWN;
  while (!context->IsCancelled()) {
    const Status now = StatusOf(request->service());
    if (now != sent) {
      HealthCheckResponse response;
      response.set_status(now);
      lock.unlock();
      const bool written = writer->Write(response);
      lock.lock();
      if (!written) break;
      sent = now;
    }
    if (shut_down_) break;
    // A client that goes away is seen at the next wake-up: there is no wait on both.
    changed_.wait_for(lock, std::chrono::milliseconds(500));
  }
  return grpc::Status::OK;
}

}  // namespace lp
