// `layerpipe load-test`: N concurrent Generate streams against a running cluster, timed:
// time to first token and tokens/s per stream and for the whole run.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <thread>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/grpc_status.h"
#include "layerpipe/v1/layerpipe.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace lp::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct StreamResult {
  bool ok = false;
  std::string error;
  double ttft_ms = 0;
  double total_ms = 0;
  int tokens = 0;
};

// Stream `index`'s prompt: `shared` tokens that every stream (and every run) has, then tokens
// of its own (of this run's `seed`).
StreamResult RunStream(layerpipe::v1::Inference::Stub* stub, const ClientOptions& client,
                       int prompt_len, int shared, int seed, int max_tokens, int index,
                       int64_t vocab) {
  layerpipe::v1::GenerateRequest req;
  for (int64_t i = 0; i < prompt_len; ++i) {
    const int64_t stream = i < shared ? 0 : 1 + index + int64_t(seed) * 1000003;
    req.mutable_token_ids()->add_ids(int32_t((stream * 7919 + i * 104729) % vocab));
  }
  req.set_max_tokens(max_tokens);
  req.set_ignore_eos(true);
  grpc::ClientContext ctx;
  PrepareCall(client, ctx, std::chrono::minutes(30));
  StreamResult r;
  const auto start = Clock::now();
  auto reader = stub->Generate(&ctx, req);
  layerpipe::v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    if (r.tokens == 0 && resp.token_ids_size() > 0) {
      r.ttft_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    }
    r.tokens += resp.token_ids_size();
  }
  r.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  grpc::Status s = reader->Finish();
  r.ok = s.ok();
  r.error = s.error_message();
  return r;
}

}  // namespace

void AddLoadTestCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("load-test", "time N concurrent generation streams");
  struct Options {
    ClientOptions client;
    int concurrency = 1, prompt_len = 32, max_tokens = 64, shared_prefix = 0, seed = 0;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  AddClientOptions(cmd, &o->client);
  cmd->add_option("--concurrency", o->concurrency, "streams at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--prompt-len", o->prompt_len, "prompt tokens per stream")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-tokens", o->max_tokens, "tokens per stream")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--shared-prefix", o->shared_prefix,
                  "prompt tokens every stream (of every run) starts with, as a system prompt")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--seed", o->seed, "picks the tokens after the shared prefix")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    if (o->shared_prefix > o->prompt_len) {
      Fail(absl::InvalidArgumentError("--shared-prefix is longer than --prompt-len"), 2);
    }
    auto stub = layerpipe::v1::Inference::NewStub(OpenChannel(o->client));
    layerpipe::v1::ModelInfo info;
    {
      grpc::ClientContext ctx;
      PrepareCall(o->client, ctx, std::chrono::seconds(10));
      grpc::Status s = stub->GetModelInfo(&ctx, {}, &info);
      if (!s.ok()) Fail(FromGrpc(s, o->client.endpoint));
    }
    std::vector<StreamResult> results(size_t(o->concurrency));
    std::vector<std::thread> threads;
    const auto start = Clock::now();
    for (int i = 0; i < o->concurrency; ++i) {
      threads.emplace_back([&, i] {
        results[size_t(i)] = RunStream(stub.get(), o->client, o->prompt_len, o->shared_prefix,
                                       o->seed, o->max_tokens, i, info.vocab_size());
      });
    }
    for (auto& t : threads) t.join();
    const double wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    int tokens = 0;
    std::vector<double> ttft, per_stream;
    for (const auto& r : results) {
      if (!r.ok) Fail(absl::UnavailableError("a stream failed: " + r.error));
      tokens += r.tokens;
      ttft.push_back(r.ttft_ms);
      // Decode speed of one stream: tokens after the first over the time after the first.
      if (r.tokens > 1) per_stream.push_back((r.tokens - 1) / ((r.total_ms - r.ttft_ms) / 1000.0));
    }
    std::sort(ttft.begin(), ttft.end());
    const double mean_stream = per_stream.empty()
                                   ? 0
                                   : std::accumulate(per_stream.begin(), per_stream.end(), 0.0) /
                                         double(per_stream.size());
    nlohmann::json j = {{"concurrency", o->concurrency},
                        {"prompt_len", o->prompt_len},
                        {"shared_prefix", o->shared_prefix},
                        {"max_tokens", o->max_tokens},
                        {"ttft_ms_median", ttft[ttft.size() / 2]},
                        {"ttft_ms_max", ttft.back()},
                        {"stream_tokens_per_s", mean_stream},
                        {"total_tokens_per_s", tokens / wall_s},
                        {"wall_s", wall_s}};
    if (o->json) {
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::printf("%d streams x (%d prompt + %d generated tokens) in %.2f s\n", o->concurrency,
                o->prompt_len, o->max_tokens, wall_s);
    std::printf("time to first token: median %.1f ms, max %.1f ms\n", ttft[ttft.size() / 2],
                ttft.back());
    std::printf("decode: %.1f tokens/s per stream, %.1f tokens/s in all\n", mean_stream,
                tokens / wall_s);
  });
}

}  // namespace lp::cli
