// Starting a daemon's gRPC server and waiting for a stop signal (see server.h).
#include "common/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

namespace lp {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void OnSignal(int) { g_stop = true; }
void OnReloadSignal(int) { g_reload = true; }

}  // namespace

absl::StatusOr<Server> StartServer(const std::string& listen, grpc::Service* service,
                                   const std::string& service_name, int max_receive_bytes,
                                   std::shared_ptr<grpc::ServerCredentials> credentials) {
  grpc::EnableDefaultHealthCheckService(false);  // ours instead (see health_service.h)
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // v1alpha
  Server out;
  out.health = std::make_unique<HealthService>(service_name);
  out.reflection = std::make_unique<ReflectionV1>(std::vector<std::string>{service_name});
  grpc::ServerBuilder builder;
  if (!credentials) credentials = grpc::InsecureServerCredentials();
  builder.AddListeningPort(listen, credentials, &out.port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(max_receive_bytes);
  builder.RegisterService(service);
  builder.RegisterService(out.health.get());
  builder.RegisterService(out.reflection.get());
  out.grpc = builder.BuildAndStart();
  if (!out.grpc || out.port == 0) {
    return absl::UnavailableError("cannot listen on " + listen +
                                  " (is another process using the port?)");
  }
  return out;
}

void Server::Shutdown() {
  health->Shutdown();  // ends Watch calls, which would otherwise hold the shutdown up
  grpc->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

void CatchStopSignals() {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
}

bool StopRequested() { return g_stop; }

void WaitForStopSignal(const std::function<void()>& on_reload) {
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (g_reload.exchange(false) && on_reload) on_reload();
  }
}

void CatchReloadSignal() { std::signal(SIGHUP, OnReloadSignal); }

}  // namespace lp
