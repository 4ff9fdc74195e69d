// layerpipe-worker CLUSTER.yaml --name NAME: plans the cluster, loads only its own slice
// (progress on the log) on its device, and serves the internal Worker service with
// grpc.health.v1 (NOT_SERVING while loading) and server reflection.
#include <chrono>
#include <cstdio>

#include "CLI/CLI.hpp"
#include "common/checkpoint.h"
#include "common/device.h"
#include "common/metrics_server.h"
#include "common/planned_cluster.h"
#include "common/program.h"
#include "common/server.h"
#include "common/tls.h"
#include "engine/backend_factory.h"
#include "worker/worker_service.h"

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
  return 1;
}

int Run(const std::string& cluster_path, const std::string& name, int threads, std::string listen,
        const std::string& metrics_listen) {
  auto planned = lp::LoadAndPlan(cluster_path);
  if (!planned.ok()) return Fail(planned.status());
  const lp::Stage* stage = planned->plan.Find(name);
  if (stage == nullptr) {
    return Fail(absl::NotFoundError("no worker named '" + name + "' in " + cluster_path));
  }
  if (listen.empty()) listen = stage->address;
  // Serve health and the (not yet ready) Worker service first, so the coordinator sees a
  // loading worker rather than none. With tls, only the coordinator may call.
  const auto& cluster = planned->cluster;
  const lp::TlsFiles tls = lp::WorkerTls(cluster, size_t(lp::FindWorker(cluster, name)));
  auto credentials = lp::ServerCredentials(tls, "tls");
  if (!credentials.ok()) return Fail(credentials.status());
  lp::WorkerService service;
  if (!tls.cert.empty()) {
    service.RequirePeer(cluster.coordinator_name);
  } else {
    lp::WarnIfExposed("worker " + name, listen,
                      "its links are plaintext and unauthenticated: anyone who reaches the port "
                      "can send it steps (set tls in the cluster file)");
  }
  auto server =
      lp::StartServer(listen, &service, "layerpipe.v1.Worker", 64 << 20, std::move(*credentials));
  if (!server.ok()) return Fail(server.status());
  lp::CatchStopSignals();

  const auto& limits = cluster.limits;
  std::fprintf(stderr, "worker %s: %s, layers [%lld, %lld)%s%s, listening on %s\n", name.c_str(),
               stage->device.c_str(), (long long)stage->begin, (long long)stage->end,
               stage->embed ? " + embedding" : "", stage->head ? " + norm + lm_head" : "",
               listen.c_str());
  auto backend = lp::MakeBackend(stage->device,
                                 {.cpu_threads = threads > 0 ? threads : lp::DefaultCpuThreads(),
                                  .log_name = "worker " + name,
                                  .batch_invariant = planned->cluster.batch_invariant});
  if (!backend.ok()) return Fail(backend.status());
  auto ckpt = lp::Checkpoint::Open(planned->cluster.model_path);
  if (!ckpt.ok()) return Fail(ckpt.status());
  lp::SliceSpec spec{stage->begin, stage->end, stage->embed, stage->head};
  auto progress = [&](int64_t done, int64_t total) {
    std::fprintf(stderr, "worker %s: loaded %lld/%lld tensors\n", name.c_str(), (long long)done,
                 (long long)total);
  };
  auto slice = lp::Slice::Load(**ckpt, spec,
                               {limits.max_batch, limits.max_context, limits.max_step_tokens,
                                planned->plan.kv_blocks, limits.kv_block_tokens},
                               std::move(*backend), progress);
  if (!slice.ok()) return Fail(slice.status());
  if (lp::IsCudaDevice(stage->device)) {  // a CPU has nothing to load or record first
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = (*slice)->WarmUp(); !s.ok()) return Fail(s);
    std::fprintf(
        stderr, "worker %s: warmed up in %.0f ms\n", name.c_str(),
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::fprintf(stderr, "worker %s: ready (KV cache %.1f MiB, files read: %zu)\n", name.c_str(),
               double((*slice)->kv_cache_bytes()) / (1 << 20), (*ckpt)->OpenedFiles().size());
  auto fingerprint = (*ckpt)->Fingerprint();  // maps every file, reads 8 KiB of each tensor
  if (!fingerprint.ok()) return Fail(fingerprint.status());
  const int index = lp::FindWorker(planned->cluster, name);
  const bool export_ipc = size_t(index + 1) < planned->cluster.workers.size() &&
                          lp::PlannedCudaIpc(planned->cluster, size_t(index + 1));
  const uint64_t kv_bytes = (*slice)->kv_cache_bytes();
  lp::WorkerCore core(std::move(*slice),
                      {name, stage->device, *fingerprint, planned->model.torch_dtype}, export_ipc);
  std::unique_ptr<lp::WorkerMetrics> metrics;
  lp::MetricsServer metrics_server;
  if (!metrics_listen.empty()) {
    metrics = std::make_unique<lp::WorkerMetrics>(
        stage->weight_bytes, kv_bytes, [&core] { return core.Stats().active_sequences(); });
    core.SetMetrics(metrics.get());
    if (auto s = metrics_server.Start(metrics_listen, [&] { return metrics->Text(); }); !s.ok()) {
      return Fail(s);
    }
    std::fprintf(stderr, "worker %s: metrics on http://%s/metrics\n", name.c_str(),
                 metrics_listen.c_str());
  }
  service.SetCore(&core);
  server->SetServing(true);
  lp::WaitForStopSignal();
  // NOT_SERVING at once; the step in progress is answered, later ones refused (the coordinator
  // pauses this worker's sequences and resumes them when it, or its successor, is back).
  std::fprintf(stderr, "worker %s: shutting down\n", name.c_str());
  server->SetServing(false);
  service.Stop(10000);
  server->Shutdown();
  metrics_server.Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  lp::EnsurePassiveOpenMpWait(argv);
  CLI::App app{
      "layerpipe-worker: serves one slice of the model (its layers, weights and KV "
      "cache) on one device"};
  std::string cluster, name, listen, metrics_listen;
  int threads = 0;
  app.add_option("CLUSTER", cluster, "cluster file (YAML)")->required()->check(CLI::ExistingFile);
  app.add_option("--name", name, "this worker's name in the cluster file")->required();
  app.add_option("--threads", threads,
                 "CPU threads (cpu devices; default: every core of this host, which its CPU "
                 "workers mostly use in turn)");
  app.add_option("--listen", listen,
                 "host:port to listen on (default: the worker's address in the cluster file; "
                 "e.g. 0.0.0.0:7001 in a container whose address others reach by another name)");
  app.add_option("--metrics-listen", metrics_listen,
                 "host:port to serve Prometheus metrics on (GET /metrics; default: none)");
  if (const int code = lp::ParseCommandLine(app, argc, argv); code >= 0) return code;
  return Run(cluster, name, threads, listen, metrics_listen);
}
