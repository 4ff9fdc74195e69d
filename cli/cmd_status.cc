// `layerpipe status --endpoint HOST:PORT`: the served model and every worker's slice, device,
// state and load (GetModelInfo + ListWorkers).
#include <grpcpp/grpcpp.h>

#include <cstdio>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/grpc_status.h"
#include "common/health_client.h"
#include "layerpipe/v1/layerpipe.grpc.pb.h"

namespace lp::cli {

void AddStatusCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("status", "show a running cluster's model and workers");
  auto o = std::make_shared<ClientOptions>();
  AddClientOptions(cmd, o.get());
  cmd->callback([o] {
    const std::string* endpoint = &o->endpoint;
    auto stub = layerpipe::v1::Inference::NewStub(OpenChannel(*o));
    grpc::ClientContext c1, c2;
    PrepareCall(*o, c1, std::chrono::seconds(5));
    PrepareCall(*o, c2, std::chrono::seconds(5));
    layerpipe::v1::ModelInfo info;
    layerpipe::v1::ListWorkersResponse workers;
    grpc::Status s = stub->GetModelInfo(&c1, {}, &info);
    if (s.ok()) s = stub->ListWorkers(&c2, {}, &workers);
    if (!s.ok()) {
      Fail(FromGrpc(s, *endpoint));
    }
    const Health h = CheckHealth(*endpoint, 2000, "", Credentials(*o));
    std::printf("%s: %s, %s\n", endpoint->c_str(),
                h == Health::kServing ? "SERVING" : "NOT_SERVING", info.architecture().c_str());
    std::printf("model %s: %lld layers, vocab %lld; limits: batch %lld, context %lld, queue %lld\n",
                info.model_path().c_str(), (long long)info.num_layers(),
                (long long)info.vocab_size(), (long long)info.max_batch(),
                (long long)info.max_context(), (long long)info.queue_capacity());
    std::printf(
        "requests: %lld running (%lld paused, waiting for a worker), %lld waiting; "
        "%lld resumed since start\n",
        (long long)workers.running_requests(), (long long)workers.paused_requests(),
        (long long)workers.queued_requests(), (long long)workers.resumed_requests());
    std::printf(
        "KV cache: %lld blocks of %lld tokens, %lld in use, %lld cached; %lld prompt tokens "
        "found cached, %lld prefilled; %lld requests preempted\n\n",
        (long long)workers.kv_blocks_total(), (long long)workers.kv_block_tokens(),
        (long long)workers.kv_blocks_used(), (long long)workers.kv_blocks_cached(),
        (long long)workers.prefix_hit_tokens(), (long long)workers.prefill_tokens(),
        (long long)workers.preempted_requests());
    std::printf("%-10s %-8s %-22s %-10s %-12s %-10s %8s %8s %8s\n", "worker", "device", "address",
                "layers", "also", "state", "active", "cached", "steps");
    for (const auto& w : workers.workers()) {
      const std::string layers =
          "[" + std::to_string(w.layer_begin()) + ", " + std::to_string(w.layer_end()) + ")";
      const std::string also = w.embed() && w.head() ? "embed+head"
                               : w.embed()           ? "embed"
                               : w.head()            ? "head"
                                                     : "-";
      std::printf("%-10s %-8s %-22s %-10s %-12s %-10s %8d %8lld %8lld\n", w.name().c_str(),
                  w.device().c_str(), w.address().c_str(), layers.c_str(), also.c_str(),
                  w.state().c_str(), w.active_sequences(), (long long)w.cached_tokens(),
                  (long long)w.steps());
    }
  });
}

}  // namespace lp::cli
