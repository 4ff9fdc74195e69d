// The coordinator's metrics and request log (see telemetry.h).
#include "coordinator/telemetry.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace lp {
namespace {

// Seconds, from a millisecond to a few minutes.
const prometheus::Histogram::BucketBoundaries kLatency = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
const prometheus::Histogram::BucketBoundaries kTokens = {1,   2,   4,   8,    16,   32,   64,
                                                         128, 256, 512, 1024, 2048, 4096, 8192};

}  // namespace

Telemetry::Telemetry(Sources sources, bool json_logs)
    : sources_(std::move(sources)),
      registry_(std::make_shared<prometheus::Registry>()),
      json_logs_(json_logs) {
  auto& r = *registry_;
  requests_ = &prometheus::BuildCounter()
                   .Name("layerpipe_requests_total")
                   .Help("Generation requests that ended, by API and outcome (a gRPC code name)")
                   .Register(r);
  prompt_tokens_ = &prometheus::BuildCounter()
                        .Name("layerpipe_prompt_tokens_total")
                        .Help("Prompt tokens of requests that ended")
                        .Register(r)
                        .Add({});
  generation_tokens_ = &prometheus::BuildCounter()
                            .Name("layerpipe_generation_tokens_total")
                            .Help("Tokens generated for requests that ended")
                            .Register(r)
                            .Add({});
  auto histogram = [&](const char* name, const char* help, const auto& buckets) {
    return &prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, buckets);
  };
  ttft_ = histogram("layerpipe_time_to_first_token_seconds",
                    "From a request's arrival to its first generated token", kLatency);
  tpot_ = histogram("layerpipe_time_per_output_token_seconds",
                    "A request's mean time per generated token after the first", kLatency);
  duration_ = histogram("layerpipe_request_duration_seconds", "From a request's arrival to its end",
                        kLatency);
  auto& steps = prometheus::BuildHistogram()
                    .Name("layerpipe_step_duration_seconds")
                    .Help("A pipeline step (micro-batch) from submission to its sampled tokens")
                    .Register(r);
  prefill_step_ = &steps.Add({{"kind", "prefill"}}, kLatency);
  decode_step_ = &steps.Add({{"kind", "decode"}}, kLatency);
  step_tokens_ = histogram("layerpipe_step_tokens", "Tokens a pipeline step carries", kTokens);
  queued_ = &prometheus::BuildGauge()
                 .Name("layerpipe_queued_requests")
                 .Help("Requests waiting for a KV-cache slot")
                 .Register(r)
                 .Add({});
  running_ = &prometheus::BuildGauge()
                  .Name("layerpipe_running_requests")
                  .Help("Requests being generated (holding a KV-cache slot)")
                  .Register(r)
                  .Add({});
  paused_ = &prometheus::BuildGauge()
                 .Name("layerpipe_paused_requests")
                 .Help("Running requests paused by a lost worker, waiting to resume")
                 .Register(r)
                 .Add({});
  resumed_ = &prometheus::BuildCounter()
                  .Name("layerpipe_resumed_requests_total")
                  .Help("Requests resumed (prefilled again from their ids) after a lost worker")
                  .Register(r)
                  .Add({});
  worker_sequences_ = &prometheus::BuildGauge()
                           .Name("layerpipe_worker_active_sequences")
                           .Help("KV-cache slots in use on each worker")
                           .Register(r);
  kv_blocks_ = &prometheus::BuildGauge()
                    .Name("layerpipe_kv_blocks")
                    .Help(
                        "KV-cache blocks by state: used (held by sequences), cached (held by "
                        "none, kept for prefix reuse), free")
                    .Register(r);
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
  };
  prefix_hit_tokens_ = counter("layerpipe_prefix_cache_hit_tokens_total",
                               "Prompt tokens found in cached KV blocks (not prefilled)");
  prefill_tokens_ = counter("layerpipe_prefill_tokens_total",
                            "Tokens sent in prefill chunks (resumes and preemptions included)");
  preempted_ = counter("layerpipe_preempted_requests_total",
                       "Running requests preempted for want of KV blocks (prefilled again later)");
  // Not in spdlog's global registry: several coordinators may live in one test process.
  log_ = std::make_shared<spdlog::logger>("requests",
                                          std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log_->set_pattern(json_logs_ ? "%v" : "%Y-%m-%dT%H:%M:%S.%e request %v");
}

Telemetry::~Telemetry() = default;

void Telemetry::RequestEnded(const RequestTag& tag, const RequestEnd& end) {
  const std::string outcome = absl::StatusCodeToString(end.code);
  requests_->Add({{"api", tag.api}, {"outcome", outcome}}).Increment();
  prompt_tokens_->Increment(double(end.prompt_tokens));
  generation_tokens_->Increment(double(end.completion_tokens));
  duration_->Observe(end.total_s);
  if (end.ttft_s >= 0) {
    ttft_->Observe(end.ttft_s);
    if (end.completion_tokens > 1) {
      tpot_->Observe((end.total_s - end.ttft_s) / double(end.completion_tokens - 1));
    }
  }
  if (json_logs_) {
    const nlohmann::json j = {
        {"event", "request"},
        {"request_id", tag.id},
        {"api", tag.api},
        {"outcome", outcome},
        {"finish", end.finish},
        {"prompt_tokens", end.prompt_tokens},
        {"completion_tokens", end.completion_tokens},
        {"ttft_ms", end.ttft_s >= 0 ? nlohmann::json(end.ttft_s * 1e3) : nlohmann::json(nullptr)},
        {"total_ms", end.total_s * 1e3}};
    log_->info("{}", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    log_->info(
        "id={} api={} outcome={} finish={} prompt_tokens={} completion_tokens={} "
        "ttft_ms={:.1f} total_ms={:.1f}",
        tag.id, tag.api, outcome, end.finish.empty() ? "-" : end.finish, end.prompt_tokens,
        end.completion_tokens, end.ttft_s >= 0 ? end.ttft_s * 1e3 : -1.0, end.total_s * 1e3);
  }
}

void Telemetry::StepDone(double seconds, int64_t tokens, bool decode) {
  (decode ? decode_step_ : prefill_step_)->Observe(seconds);
  step_tokens_->Observe(double(tokens));
}

std::string Telemetry::Text() {
  // The scheduler counts; a counter catches up at each scrape (it never goes back).
  auto catch_up = [](prometheus::Counter* counter, int64_t value) {
    counter->Increment(std::max(0.0, double(value) - counter->Value()));
  };
  if (sources_.queued) queued_->Set(double(sources_.queued()));
  if (sources_.running) running_->Set(double(sources_.running()));
  if (sources_.paused) paused_->Set(double(sources_.paused()));
  if (sources_.resumed) catch_up(resumed_, sources_.resumed());
  if (sources_.kv_blocks) {
    const KvBlockReport kv = sources_.kv_blocks();
    kv_blocks_->Add({{"state", "used"}}).Set(double(kv.used));
    kv_blocks_->Add({{"state", "cached"}}).Set(double(kv.cached));
    kv_blocks_->Add({{"state", "free"}}).Set(double(kv.total - kv.used - kv.cached));
    catch_up(prefix_hit_tokens_, kv.prefix_hit_tokens);
    catch_up(prefill_tokens_, kv.prefill_tokens);
    catch_up(preempted_, kv.preempted);
  }
  if (sources_.worker_sequences) {
    for (const auto& [worker, n] : sources_.worker_sequences()) {
      worker_sequences_->Add({{"worker", worker}}).Set(double(n));
    }
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace lp
