// `layerpipe check-model DIR`: validates a checkpoint completely and prints a summary.
#include <cstdio>

#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/checkpoint.h"

namespace lp::cli {

void AddCheckModelCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "check-model", "validate a checkpoint (files, every tensor's shape) and summarize it");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("DIR", *dir, "Hugging Face checkpoint directory")->required();
  cmd->callback([dir] {
    auto ckpt = Checkpoint::Open(*dir);
    if (!ckpt.ok()) Fail(ckpt.status());
    auto summary = (*ckpt)->Validate();
    if (!summary.ok()) Fail(summary.status());
    const ModelConfig& c = (*ckpt)->config();
    std::printf("%s: OK\n", dir->c_str());
    std::printf("  architecture  %s\n", summary->architecture.c_str());
    std::printf("  layers        %lld (hidden %lld, heads %lld/%lld kv, head_dim %lld, "
                "intermediate %lld, vocab %lld%s)\n",
                (long long)c.num_layers, (long long)c.hidden_size, (long long)c.num_heads,
                (long long)c.num_kv_heads, (long long)c.head_dim, (long long)c.intermediate_size,
                (long long)c.vocab_size, c.tie_word_embeddings ? ", tied embeddings" : "");
    std::printf("  parameters    %lld (%.3f B)\n", (long long)summary->num_parameters,
                double(summary->num_parameters) / 1e9);
    for (const auto& [dtype, bytes] : summary->bytes_by_dtype) {
      std::printf("  %-13s %llu bytes (%.2f GiB)\n", dtype.c_str(), (unsigned long long)bytes,
                  double(bytes) / double(1ull << 30));
    }
    std::printf("  files         %s\n", absl::StrJoin(summary->files, ", ").c_str());
    if (!summary->ignored.empty()) {
      std::printf("  ignored       %s (not used by the model)\n",
                  absl::StrJoin(summary->ignored, ", ").c_str());
    }
  });
}

}  // namespace lp::cli
