// `layerpipe logits`: one forward pass over a prompt through the model cut into N slices.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "cli/commands.h"
#include "cli/local_chain_flags.h"
#include "cli/util.h"
#include "nlohmann/json.hpp"

namespace lp::cli {
namespace {

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
    for (size_t i = 0; i < k; ++i)
      j["top"].push_back({{"id", order[i]}, {"logit", logits[order[i]]}});
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("argmax %d\n", ArgMax(logits));
  for (size_t i = 0; i < k; ++i) std::printf("%8d  %12.6f\n", order[i], logits[order[i]]);
}

}  // namespace

void AddLogitsCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "one forward pass; prints the last position's logits");
  auto o = std::make_shared<ChainOptions>();
  auto top = std::make_shared<int64_t>(10);
  auto dump = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  AddChainOptions(cmd, o.get());
  cmd->add_option("--top", *top, "print the K largest logits")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--dump", *dump, "write the full last-position logits (float32, little-endian)");
  cmd->add_flag("--json", *as_json, "print {\"argmax\": ID, \"top\": [{\"id\", \"logit\"}, ...]}");
  cmd->callback([=] { RunLogits(*o, *top, *dump, *as_json); });
}

}  // namespace lp::cli
