// The grpc.health.v1 service every layerpipe daemon serves. gRPC's built-in one answers SERVING
// from the moment the server starts until it is told otherwise, so a probe could see a daemon
// ready before it is; this one starts NOT_SERVING.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace lp {

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  // Knows "" (the server as a whole) and `service_name`, both NOT_SERVING.
  explicit HealthService(const std::string& service_name);

  // Sets both statuses.
  void SetServing(bool serving);
  // NOT_SERVING for good, and every Watch ends (before the server shuts down).
  void Shutdown();

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  // Sends the status now and again on every change, until the client goes or Shutdown().
  grpc::Status Watch(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  Status StatusOf(const std::string& service) const;  // SERVICE_UNKNOWN if not known; holds mu_

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Status> statuses_;
  bool shut_down_ = false;
};

}  // namespace lp
