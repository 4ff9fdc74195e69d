// layerpipe-coordinator CLUSTER.yaml: plans the cluster, connects to every worker (refusing
// any whose handshake disagrees with the plan or the model), then serves the public API with
// grpc.health.v1 (SERVING only while every worker is) and server reflection, and with
// coordinator.http_listen the OpenAI-compatible HTTP API (openai_http.h). SIGTERM / SIGINT
// drain it: NOT_SERVING and new requests refused at once, running ones finish (--drain-timeout).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/checkpoint.h"
#include "common/metrics_server.h"
#include "common/planned_cluster.h"
#include "common/program.h"
#include "common/server.h"
#include "common/tls.h"
#include "coordinator/api_tokens.h"
#include "coordinator/inference_service.h"
#include "coordinator/openai_http.h"

namespace {

int Run(const std::string& cluster_path, std::string listen, int64_t queue_capacity,
        const std::string& log_format, const std::string& metrics_listen, int drain_timeout_s) {
  auto planned = lp::LoadAndPlan(cluster_path);
  if (!planned.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(planned.status().message()).c_str());
    return 1;
  }
  const auto& cluster = planned->cluster;
  if (listen.empty()) listen = cluster.coordinator_listen;
  auto ckpt = lp::Checkpoint::Open(cluster.model_path);
  if (!ckpt.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(ckpt.status().message()).c_str());
    return 1;
  }
  auto generation = lp::LoadGenerationConfig(cluster.model_path);
  if (!generation.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(generation.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<lp::Tokenizer> tokenizer;
  std::optional<lp::ChatTemplate> chat;
  if (std::filesystem::exists(std::filesystem::path(cluster.model_path) / "tokenizer.json")) {
    auto t = lp::Tokenizer::Load(cluster.model_path);
    if (!t.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    tokenizer = std::move(*t);
    auto c = lp::ChatTemplate::Load(cluster.model_path);
    if (c.ok()) chat = *c;
  } else {
    std::fprintf(stderr, "coordinator: %s has no tokenizer.json: token-id prompts only\n",
                 cluster.model_path.c_str());
  }

  auto fingerprint = (*ckpt)->Fingerprint();
  if (!fingerprint.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(fingerprint.status().message()).c_str());
    return 1;
  }
  std::vector<lp::WorkerExpectation> workers;
  for (const lp::Stage& s : planned->plan.stages) {
    workers.push_back({s.worker, s.address, s.device, *fingerprint, s.begin, s.end, s.embed, s.head,
                       cluster.limits.max_batch, cluster.limits.max_context,
                       cluster.limits.max_step_tokens, planned->plan.kv_blocks,
                       cluster.limits.kv_block_tokens});
  }
  auto link_credentials = lp::ChannelCredentials(cluster.tls, "tls");
  if (!link_credentials.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(link_credentials.status().message()).c_str());
    return 1;
  }
  for (const auto& w : cluster.workers) {
    if (!cluster.tls.cert.empty()) break;
    lp::WarnIfExposed("worker " + w.name, w.address,
                      "the coordinator's link to it is plaintext and unauthenticated (set tls "
                      "in the cluster file)");
  }
  auto api_credentials = lp::ServerCredentials(cluster.api_tls, "coordinator.api_tls");
  if (!api_credentials.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(api_credentials.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<lp::ApiTokens> tokens;
  if (!cluster.tokens_file.empty()) {
    auto loaded = lp::ApiTokens::Load(cluster.tokens_file);
    if (!loaded.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(loaded.status().message()).c_str());
      return 1;
    }
    tokens = std::move(*loaded);
  }
  lp::Server server;
  std::atomic<lp::Server*> health_target{nullptr};  // set once the server runs
  lp::GrpcPipeline pipeline(
      std::move(workers),
      {.allow_ipc = cluster.transport == "auto", .decode_ahead = cluster.decode_ahead},
      [&](bool ready) {
        std::fprintf(stderr, "coordinator: cluster %s\n",
                     ready ? "ready (SERVING)" : "NOT_SERVING");
        if (lp::Server* s = health_target.load()) s->SetServing(ready);
      },
      *link_credentials);
  lp::SchedulerLimits limits{cluster.limits.max_batch,
                             cluster.limits.max_context,
                             cluster.limits.max_step_tokens,
                             queue_capacity,
                             std::chrono::milliseconds(int64_t(cluster.resume_timeout_s * 1000)),
                             planned->plan.kv_blocks,
                             cluster.limits.kv_block_tokens};
  // The telemetry outlives the scheduler, whose thread reports every step to it; its gauges
  // read the scheduler only when scraped, once the servers run.
  const lp::Scheduler* scheduler_ptr = nullptr;
  lp::Telemetry telemetry(
      {.queued = [&] { return scheduler_ptr->queued(); },
       .running = [&] { return scheduler_ptr->active(); },
       .paused = [&] { return scheduler_ptr->paused(); },
       .resumed = [&] { return scheduler_ptr->resumed(); },
       .kv_blocks = [&] { return scheduler_ptr->kv_blocks(); },
       .worker_sequences =
           [&] {
             std::vector<std::pair<std::string, int64_t>> out;
             const auto& links = pipeline.links();
             for (size_t i = 0; i < links.size(); ++i) {
               if (!links[i]->up()) continue;
               auto stats = links[i]->Stats(500);
               if (stats.ok()) {
                 out.push_back({planned->plan.stages[i].worker, stats->active_sequences()});
               }
             }
             return out;
           }},
      log_format == "json");
  lp::Scheduler scheduler(&pipeline, limits, [&](double seconds, int64_t tokens, bool decode) {
    telemetry.StepDone(seconds, tokens, decode);
  });
  scheduler_ptr = &scheduler;

  lp::ServedModel model;
  model.tokenizer = tokenizer.get();
  model.chat_template = chat ? &*chat : nullptr;
  model.validation = {planned->model.vocab_size, cluster.limits.max_context, {}};
  for (int64_t id : generation->eos_token_ids) model.validation.eos_ids.push_back(int32_t(id));
  model.plan = planned->plan;
  auto& info = model.info;
  info.set_architecture(planned->model.architecture_name);
  info.set_model_path(cluster.model_path);
  info.set_num_layers(planned->model.num_layers);
  info.set_hidden_size(planned->model.hidden_size);
  info.set_vocab_size(planned->model.vocab_size);
  info.set_max_context(cluster.limits.max_context);
  info.set_max_batch(cluster.limits.max_batch);
  info.set_queue_capacity(queue_capacity);
  info.set_has_tokenizer(tokenizer != nullptr);
  for (int32_t id : model.validation.eos_ids) info.add_eos_token_ids(id);
  lp::InferenceService service(&scheduler, &pipeline, std::move(model), &telemetry, tokens.get());

  const std::string exposed = tokens ? "requests and answers cross the network in plaintext "
                                       "(set coordinator.api_tls)"
                                     : "plaintext, and anyone who reaches the port can use the "
                                       "model (set coordinator.api_tls and coordinator.auth)";
  if (cluster.api_tls.cert.empty()) lp::WarnIfExposed("the coordinator's API", listen, exposed);
  auto started = lp::StartServer(listen, &service, "layerpipe.v1.Inference", 16 << 20,
                                 std::move(*api_credentials));
  if (!started.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(started.status().message()).c_str());
    return 1;
  }
  server = std::move(*started);
  server.SetServing(pipeline.Ready());
  health_target = &server;
  server.SetServing(pipeline.Ready());  // a flip in between
  std::fprintf(stderr, "coordinator: serving layerpipe.v1.Inference on %s (%zu workers, %s)\n",
               listen.c_str(), planned->plan.stages.size(),
               pipeline.Ready() ? "ready" : "waiting for workers");
  for (const auto& problem : pipeline.Problems()) {
    if (!problem.empty()) std::fprintf(stderr, "coordinator: %s\n", problem.c_str());
  }
  std::optional<lp::OpenAiHttp> http;
  if (!cluster.http_listen.empty()) {
    http.emplace(
        &service, cluster.model_name, [&] { return pipeline.Ready() && !scheduler.draining(); },
        &telemetry);
    if (cluster.api_tls.cert.empty()) {
      lp::WarnIfExposed("the coordinator's HTTP API", cluster.http_listen, exposed);
    }
    if (auto s = http->Start(cluster.http_listen, cluster.api_tls); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
      server.Shutdown();
      return 1;
    }
    std::fprintf(stderr, "coordinator: OpenAI-compatible HTTP API on %s://%s/v1 (model \"%s\")\n",
                 cluster.api_tls.cert.empty() ? "http" : "https", cluster.http_listen.c_str(),
                 cluster.model_name.c_str());
  }
  lp::MetricsServer metrics_server;
  if (!metrics_listen.empty()) {
    if (auto s = metrics_server.Start(metrics_listen, [&] { return telemetry.Text(); }); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "coordinator: metrics on http://%s/metrics\n", metrics_listen.c_str());
  }
  lp::CatchStopSignals();
  if (tokens) {
    std::fprintf(stderr, "coordinator: %zu API tokens from %s (SIGHUP rereads it)\n",
                 tokens->size(), tokens->path().c_str());
    lp::CatchReloadSignal();
  }
  lp::WaitForStopSignal([&] {
    if (!tokens) return;
    const absl::Status s = tokens->Reload();
    if (s.ok()) {
      std::fprintf(stderr, "coordinator: reread %zu API tokens from %s\n", tokens->size(),
                   tokens->path().c_str());
    } else {
      std::fprintf(stderr, "coordinator: kept the API tokens it had: %s\n",
                   std::string(s.message()).c_str());
    }
  });
  // Drain: NOT_SERVING at once, new requests refused, what runs or waits may finish.
  health_target = nullptr;
  server.SetServing(false);
  scheduler.Drain();
  std::fprintf(stderr,
               "coordinator: draining: new requests refused; %lld running and %lld waiting get "
               "up to %d s\n",
               (long long)scheduler.active(), (long long)scheduler.queued(), drain_timeout_s);
  const auto drain_end = std::chrono::steady_clock::now() + std::chrono::seconds(drain_timeout_s);
  while ((scheduler.active() > 0 || scheduler.queued() > 0) &&
         std::chrono::steady_clock::now() < drain_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "coordinator: shutting down (%lld requests left unfinished)\n",
               (long long)(scheduler.active() + scheduler.queued()));
  if (http) http->Stop();
  metrics_server.Stop();
  server.Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "layerpipe-coordinator: plans the cluster, connects to its workers and serves "
      "the layerpipe.v1.Inference API"};
  std::string cluster, listen;
  int64_t queue_capacity = 256;
  std::string log_format = "text", metrics_listen;
  int drain_timeout_s = 30;
  app.add_option("CLUSTER", cluster, "cluster file (YAML)")->required()->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "host:port to serve on (default: coordinator.listen)");
  app.add_option("--queue", queue_capacity,
                 "waiting requests beyond which Generate answers "
                 "RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--drain-timeout", drain_timeout_s,
                 "on SIGTERM / SIGINT: seconds the running and waiting requests get to finish "
                 "(health NOT_SERVING and new requests refused at once)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
  app.add_option("--metrics-listen", metrics_listen,
                 "host:port to serve Prometheus metrics on (GET /metrics) besides "
                 "coordinator.http_listen's /metrics; default: none");
  app.add_option("--log-format", log_format,
                 "the request log on stderr, a line per finished request: text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  if (const int code = lp::ParseCommandLine(app, argc, argv); code >= 0) return code;
  return Run(cluster, listen, queue_capacity, log_format, metrics_listen, drain_timeout_s);
}
