// The flags and loading that `layerpipe logits` and `greedy` share (see local_chain_flags.h).
#include "cli/local_chain_flags.h"

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli/util.h"
#include "engine/backend_factory.h"

namespace lp::cli {
namespace {

// Every slice on the CPU, or every slice on GPU 0. `layerpipe` has no CUDA backend: it runs
// the same command in layerpipe-cuda.
BackendFactory Factory(const std::string& backend) {
  if (backend == "cuda" && !HasCudaBackend()) RunCudaProgram();
  const std::string device = backend == "cuda" ? "cuda:0" : "cpu:0";
  return [device] { return MakeBackend(device, {.log_name = "loading"}); };
}

}  // namespace

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
    Fail(absl::InvalidArgumentError(
             absl::StrCat("--slices ", o.slices, " exceeds the model's ", c.num_layers, " layers")),
         2);
  }
  SliceLimits limits;
  limits.max_batch = 1;
  limits.max_context = int64_t(out.prompt.size()) + extra_positions;
  limits.max_step_tokens = int64_t(out.prompt.size());
  const auto t0 = std::chrono::steady_clock::now();
  auto chain =
      LocalChain::Load(*out.ckpt, EvenSlices(c.num_layers, o.slices), limits, Factory(o.backend));
  if (!chain.ok()) Fail(chain.status());
  out.chain = std::move(*chain);
  out.chain->slices().back()->backend().Synchronize();
  if (o.backend != "cpu") {
    std::fprintf(stderr, "loaded %s on %s in %.2f s\n", o.model.c_str(), o.backend.c_str(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return out;
}

}  // namespace lp::cli
