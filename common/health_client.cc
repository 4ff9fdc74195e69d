// Asking a server's grpc.health.v1 status (see health_client.h).
#include "common/health_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "grpc/health/v1/health.grpc.pb.h"

namespace lp {

Health CheckHealth(const std::string& address, int timeout_ms, const std::string& service,
                   std::shared_ptr<grpc::ChannelCredentials> credentials) {
  if (!credentials) credentials = grpc::InsecureChannelCredentials();
  auto channel = grpc::CreateChannel(address, credentials);
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return Health::kUnreachable;
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? Health::kServing
                                                                         : Health::kNotServing;
}

}  // namespace lp
