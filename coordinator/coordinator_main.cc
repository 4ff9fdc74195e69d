// layerpipe-coordinator CLUSTER.yaml: plans the cluster, connects to every worker (refusing
// any whose handshake disagrees with the plan or the model), then serves the public API with
// grpc.health.v1 (SERVING only while every worker is) and server reflection.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/checkpoint.h"
#include "common/planned_cluster.h"
#include "common/program.h"
#include "common/reflection_v1.h"
#include "coordinator/inference_service.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

int Run(const std::string& cluster_path, std::string listen, int64_t queue_capacity) {
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
    workers.push_back({s.worker, s.address, s.device, *fingerprint, s.begin, s.end,
                       s.embed, s.head, cluster.limits.max_batch, cluster.limits.max_context,
                       cluster.limits.max_step_tokens});
  }
  std::unique_ptr<grpc::Server> server;
  std::atomic<grpc::Server*> health_target{nullptr};  // set once the server runs
  lp::GrpcPipeline pipeline(std::move(workers), 1000, cluster.transport == "auto", [&](bool ready) {
    std::fprintf(stderr, "coordinator: cluster %s\n", ready ? "ready (SERVING)" : "NOT_SERVING");
    if (grpc::Server* s = health_target.load()) s->GetHealthCheckService()->SetServingStatus(ready);
  });
  lp::SchedulerLimits limits{cluster.limits.max_batch, cluster.limits.max_context,
                             cluster.limits.max_step_tokens, queue_capacity};
  lp::Scheduler scheduler(&pipeline, limits);

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
  lp::InferenceService service(&scheduler, &pipeline, std::move(model));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  // gRPC sets SO_REUSEPORT by default: a second process on a taken port would start and
  // silently take part of its traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(16 << 20);
  builder.RegisterService(&service);
  lp::ReflectionV1 reflection({"layerpipe.v1.Inference"});  // v1alpha comes with the plugin
  builder.RegisterService(&reflection);
  server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "error: cannot listen on %s (is another process using the port?)\n",
                 listen.c_str());
    return 1;
  }
  // Per service too (grpc.health.v1 clients ask by name); the plain SetServingStatus(bool)
  // calls below and in the ready callback then update it with the server's.
  server->GetHealthCheckService()->SetServingStatus("layerpipe.v1.Inference", pipeline.Ready());
  server->GetHealthCheckService()->SetServingStatus(pipeline.Ready());
  health_target = server.get();
  server->GetHealthCheckService()->SetServingStatus(pipeline.Ready());  // a flip in between
  std::fprintf(stderr, "coordinator: serving layerpipe.v1.Inference on %s (%zu workers, %s)\n",
               listen.c_str(), planned->plan.stages.size(),
               pipeline.Ready() ? "ready" : "waiting for workers");
  for (const auto& problem : pipeline.Problems()) {
    if (!problem.empty()) std::fprintf(stderr, "coordinator: %s\n", problem.c_str());
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "coordinator: shutting down\n");
  health_target = nullptr;
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"layerpipe-coordinator: plans the cluster, connects to its workers and serves "
               "the layerpipe.v1.Inference API"};
  std::string cluster, listen;
  int64_t queue_capacity = 256;
  app.add_option("CLUSTER", cluster, "cluster file (YAML)")->required()->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "host:port to serve on (default: coordinator.listen)");
  app.add_option("--queue", queue_capacity, "waiting requests beyond which Generate answers "
                 "RESOURCE_EXHAUSTED")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  if (const int code = lp::ParseCommandLine(app, argc, argv); code >= 0) return code;
  return Run(cluster, listen, queue_capacity);
}
