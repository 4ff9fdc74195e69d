// A worker's Prometheus metrics (see worker_metrics.h).
#include "worker/worker_metrics.h"

#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace lp {
namespace {

const prometheus::Histogram::BucketBoundaries kSeconds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
const prometheus::Histogram::BucketBoundaries kTokens = {1,   2,   4,   8,    16,   32,   64,
                                                         128, 256, 512, 1024, 2048, 4096, 8192};

}  // namespace

WorkerMetrics::WorkerMetrics(uint64_t weight_bytes, uint64_t kv_cache_bytes,
                             std::function<int64_t()> active_sequences)
    : active_sequences_(std::move(active_sequences)),
      registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  auto& steps = prometheus::BuildHistogram()
                    .Name("layerpipe_worker_step_duration_seconds")
                    .Help("A step on this worker, its input's wait included, by kind")
                    .Register(r);
  prefill_ = &steps.Add({{"kind", "prefill"}}, kSeconds);
  decode_ = &steps.Add({{"kind", "decode"}}, kSeconds);
  tokens_ = &prometheus::BuildHistogram()
                 .Name("layerpipe_worker_step_tokens")
                 .Help("Tokens a step carries")
                 .Register(r)
                 .Add({}, kTokens);
  auto& wait = prometheus::BuildHistogram()
                   .Name("layerpipe_worker_handover_wait_seconds")
                   .Help(
                       "The previous worker's activations: the wait for its CUDA IPC hand-over, "
                       "or a step's first gRPC message to its last activation chunk")
                   .Register(r);
  ipc_wait_ = &wait.Add({{"transport", "cuda_ipc"}}, kSeconds);
  grpc_wait_ = &wait.Add({{"transport", "grpc"}}, kSeconds);
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
  };
  gauge("layerpipe_worker_weight_bytes", "Weights this worker holds (as planned)")
      ->Set(double(weight_bytes));
  gauge("layerpipe_worker_kv_cache_bytes", "This worker's KV cache")->Set(double(kv_cache_bytes));
  active_ = gauge("layerpipe_worker_active_sequences", "KV-cache slots in use");
}

WorkerMetrics::~WorkerMetrics() = default;

void WorkerMetrics::StepDone(double seconds, int64_t tokens, bool decode, double ipc_wait_s) {
  (decode ? decode_ : prefill_)->Observe(seconds);
  tokens_->Observe(double(tokens));
  if (ipc_wait_s >= 0) ipc_wait_->Observe(ipc_wait_s);
}

void WorkerMetrics::GrpcInputReceived(double seconds) { grpc_wait_->Observe(seconds); }

std::string WorkerMetrics::Text() {
  if (active_sequences_) active_->Set(double(active_sequences_()));
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace lp
