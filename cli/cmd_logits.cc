// `layerpipe logits`: one forward pass over a prompt through the model cut into N slices.
// `layerpipe greedy`: greedy generation with the KV cache through N slices, with timings.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/checkpoint.h"
#include "nlohmann/json.hpp"
#include "engine/backend_factory.h"
#include "engine/local_chain.h"

namespace lp::cli {
namespace {

struct ChainOptions {
  std::string model;
  std::string prompt_ids;
  int64_t slices = 1;
  std::string backend = "cpu";
};

void AddChainOptions(CLI::App* cmd, ChainOptions* o) {
  cmd->add_option("--model", o->model, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--prompt-ids", o->prompt_ids, "prompt token ids, e.g. 1,2,3")->required();
  cmd->add_option("--slices", o->slices, "cut the model into N slices run in a chain")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--backend", o->backend, "cpu, or cuda (every slice on GPU 0, bf16)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

// Every slice on the CPU, or every slice on GPU 0. `layerpipe` has no CUDA backend: it runs
// the same command in layerpipe-cuda.
BackendFactory Factory(const std::string& backend) {
  if (backend == "cuda" && !HasCudaBackend()) RunCudaProgram();
  const std::string device = backend == "cuda" ? "cuda:0" : "cpu:0";
  return [device] { return MakeBackend(device, {.log_name = "loading"}); };
}

struct LoadedChain {
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<LocalChain> chain;
  std::vector<int32_t> prompt;
};

LoadedChain LoadChain(const ChainOptions& o, int64_t extra_positions) {
  LoadedChain out;
  auto prompt = ParseIdList(o.prompt_ids);
  if (!prompt.ok()) Fail(prompt.status(), 2);
  out.prompt = *prompt;
  auto ckpt = Checkpoint::Open(o.model);
  if (!ckpt.ok()) Fail(ckpt.status());
  out.ckpt = std::move(*ckpt);
  const ModelConfig& c = out.ckpt->config();
  if (o.slices > c.num_layers) {
    Fail(absl::InvalidArgumentError(absl::StrCat("--slices ", o.slices, " exceeds the model's ",
                                                 c.num_layers, " layers")), 2);
  }
  SliceLimits limits;
  limits.max_seqs = 1;
  limits.max_context = int64_t(out.prompt.size()) + extra_positions;
  limits.max_step_tokens = int64_t(out.prompt.size());
  const auto t0 = std::chrono::steady_clock::now();
  auto chain = LocalChain::Load(*out.ckpt, EvenSlices(c.num_layers, o.slices), limits,
                                Factory(o.backend));
  if (!chain.ok()) Fail(chain.status());
  out.chain = std::move(*chain);
  out.chain->slices().back()->backend().Synchronize();
  if (o.backend != "cpu") std::fprintf(stderr, "loaded %s on %s in %.2f s\n", o.model.c_str(), o.backend.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return out;
}

void RunLogits(const ChainOptions& o, int64_t top, const std::string& dump, bool as_json) {
  LoadedChain lc = LoadChain(o, 0);
  StepLayout layout;
  layout.seqs = {{0, 0, int32_t(lc.prompt.size())}};
  std::vector<float> logits;
  if (auto s = lc.chain->Step(layout, lc.prompt, &logits); !s.ok()) Fail(s);

  if (!dump.empty()) {
    std::ofstream f(dump, std::ios::binary);
    f.write(reinterpret_cast<const char*>(logits.data()), std::streamsize(logits.size() * 4));
    if (!f) Fail(absl::PermissionDeniedError(dump + ": cannot write"));
  }
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min<size_t>(size_t(top), order.size());
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  if (as_json) {
    nlohmann::json j;
    j["argmax"] = ArgMax(logits);
    j["top"] = nlohmann::json::array();
    for (size_t i = 0; i < k; ++i) j["top"].push_back({{"id", order[i]}, {"logit", logits[order[i]]}});
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("argmax %d\n", ArgMax(logits));
  for (size_t i = 0; i < k; ++i) std::printf("%8d  %12.6f\n", order[i], logits[order[i]]);
}

void RunGreedy(const ChainOptions& o, int64_t max_tokens, bool as_json) {
  LoadedChain lc = LoadChain(o, max_tokens);
  using Clock = std::chrono::steady_clock;
  StepLayout layout;
  layout.seqs = {{0, 0, int32_t(lc.prompt.size())}};
  std::vector<float> logits;
  const auto t0 = Clock::now();
  if (auto s = lc.chain->Step(layout, lc.prompt, &logits); !s.ok()) Fail(s);
  const auto t1 = Clock::now();
  std::vector<int32_t> generated = {ArgMax(logits)};
  for (int64_t i = 1; i < max_tokens; ++i) {
    layout.seqs = {{0, int32_t(lc.prompt.size() + i - 1), 1}};
    if (auto s = lc.chain->Step(layout, std::span(&generated.back(), 1), &logits); !s.ok()) Fail(s);
    generated.push_back(ArgMax(logits));
  }
  const auto t2 = Clock::now();
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  const double prefill_tps = double(lc.prompt.size()) / prefill_s;
  const double decode_tps = max_tokens > 1 ? double(max_tokens - 1) / decode_s : 0.0;
  if (as_json) {
    nlohmann::json j = {{"token_ids", generated},
                        {"slices", o.slices},
                        {"prefill_tokens_per_s", prefill_tps},
                        {"decode_tokens_per_s", decode_tps}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("generated: %s\n", absl::StrJoin(generated, ",").c_str());
  std::printf("prefill: %zu tokens in %.1f ms (%.1f tokens/s); decode: %.1f tokens/s (%zu slices)\n",
              lc.prompt.size(), prefill_s * 1e3, prefill_tps, decode_tps, size_t(o.slices));
}

}  // namespace

void AddLogitsCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "one forward pass; prints the last position's logits");
  auto o = std::make_shared<ChainOptions>();
  auto top = std::make_shared<int64_t>(10);
  auto dump = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  AddChainOptions(cmd, o.get());
  cmd->add_option("--top", *top, "print the K largest logits")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--dump", *dump, "write the full last-position logits (float32, little-endian)");
  cmd->add_flag("--json", *as_json, "print {\"argmax\": ID, \"top\": [{\"id\", \"logit\"}, ...]}");
  cmd->callback([=] { RunLogits(*o, *top, *dump, *as_json); });

  auto* greedy = app.add_subcommand(
      "greedy", "greedy generation with the KV cache through N in-process slices, timed");
  auto go = std::make_shared<ChainOptions>();
  auto max_tokens = std::make_shared<int64_t>(20);
  auto gjson = std::make_shared<bool>(false);
  AddChainOptions(greedy, go.get());
  greedy->add_option("--max-tokens", *max_tokens, "tokens to generate")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  greedy->add_flag("--json", *gjson, "print one JSON object");
  greedy->callback([=] { RunGreedy(*go, *max_tokens, *gjson); });
}

}  // namespace lp::cli
