// What every layerpipe daemon (worker, coordinator) and `layerpipe serve` do alike: start a gRPC
// server with health checking and reflection on one port, and run until SIGINT or SIGTERM.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/health_service.h"
#include "common/reflection_v1.h"

namespace lp {

// A started server and the health and reflection services it serves (which must live as long).
struct Server {
  std::unique_ptr<HealthService> health;
  std::unique_ptr<ReflectionV1> reflection;
  std::unique_ptr<grpc::Server> grpc;
  int port = 0;  // the port it listens on (the one picked when asked for port 0)

  // Sets the health status of the server and of its service (grpc.health.v1 clients ask
  // either way).
  void SetServing(bool serving) { health->SetServing(serving); }
  // Stops taking calls and gives running ones up to two seconds.
  void Shutdown();
};

// Serves `service` (full name `service_name`, e.g. "layerpipe.v1.Worker") on `listen`
// (host:port) with `credentials` (plaintext when null), not serving until SetServing(true). An
// error when the port is taken: gRPC's SO_REUSEPORT, which would let a second process silently
// share the port, is off.
absl::StatusOr<Server> StartServer(const std::string& listen, grpc::Service* service,
                                   const std::string& service_name, int max_receive_bytes,
                                   std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);

// From now on SIGINT and SIGTERM only set a flag that StopRequested() reads.
void CatchStopSignals();
bool StopRequested();
// Returns once StopRequested() (checked every 100 ms). After CatchReloadSignal(), calls
// `on_reload` on this thread after each SIGHUP.
void WaitForStopSignal(const std::function<void()>& on_reload = nullptr);
// From now on SIGHUP (whose default would end the process) asks WaitForStopSignal to reload.
void CatchReloadSignal();

}  // namespace lp
