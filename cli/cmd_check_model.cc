// `layerpipe check-model DIR`: validates a checkpoint completely and prints a summary.
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
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
    std::printf(
        "  layers        %lld (hidden %lld, heads %lld/%lld kv, head_dim %lld, "
        "intermediate %lld, vocab %lld%s)\n",
        (long long)c.num_layers, (long long)c.hidden_size, (long long)c.num_heads,
        (long long)c.num_kv_heads, (long long)c.head_dim, (long long)c.intermediate_size,
        (long long)c.vocab_size, c.tie_word_embeddings ? ", tied embeddings" : "");
    std::printf("  parameters    %lld (%.3f B)\n", (long long)summary->num_parameters,
                double(summary->num_parameters) / 1e9);
    if (c.quant.quantized()) {
      const QuantConfig& q = c.quant;
      const bool gptq = q.method == QuantMethod::kGptq;
      std::printf(
          "  quantization  %s%s, %lld bits, group size %s, %s zeros, act order %s\n",
          QuantMethodName(q.method),
          gptq ? (q.gptq_v2 ? " (gptq_v2 format)" : " (gptq format)") : " (gemm)",
          (long long)q.bits,
          q.group_size < 0 ? "-1 (one group per row)" : std::to_string(q.group_size).c_str(),
          gptq && q.sym ? "symmetric" : "asymmetric",
          gptq ? absl::StrCat(q.desc_act ? "on" : "off", " (", summary->act_order_linears,
                              " linears with g_idx out of order)")
                     .c_str()
               : "n/a");
      std::printf("  linears       %lld packed in 4 bits, %lld dense%s\n",
                  (long long)summary->packed_linears, (long long)summary->dense_linears,
                  summary->dense_linears ? " (modules_to_not_convert)" : "");
    }
    for (const auto& [dtype, bytes] : summary->bytes_by_dtype) {
      std::printf("  %-13s %llu bytes (%.2f GiB)\n", dtype.c_str(), (unsigned long long)bytes,
                  double(bytes) / double(1ull << 30));
    }
    std::printf("  files         %s\n", absl::StrJoin(summary->files, ", ").c_str());
    if (!std::filesystem::exists(std::filesystem::path(*dir) / "tokenizer.json")) {
      std::printf(
          "  tokenizer     none (no tokenizer.json): a cluster serving it accepts token-id "
          "prompts only, no text or chat\n");
    }
    if (!summary->ignored.empty()) {
      std::printf("  ignored       %s (not used by the model)\n",
                  absl::StrJoin(summary->ignored, ", ").c_str());
    }
  });
}

}  // namespace lp::cli
