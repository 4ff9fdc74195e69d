// `layerpipe greedy`: greedy generation with the KV cache through N slices, with timings.
#include <chrono>
#include <cstdio>

#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/local_chain_flags.h"
#include "cli/util.h"
#include "nlohmann/json.hpp"

namespace lp::cli {
namespace {

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
  std::printf(
      "prefill: %zu tokens in %.1f ms (%.1f tokens/s); decode: %.1f tokens/s (%zu slices)\n",
      lc.prompt.size(), prefill_s * 1e3, prefill_tps, decode_tps, size_t(o.slices));
}

}  // namespace

void AddGreedyCommand(CLI::App& app) {
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
