// What `layerpipe logits` and `layerpipe greedy` share: the model cut into N slices chained in
// this process (engine/local_chain.h) on the CPU or GPU 0, from the same flags.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/checkpoint.h"
#include "engine/local_chain.h"

namespace lp::cli {

struct ChainOptions {
  std::string model;
  std::string prompt_ids;
  int64_t slices = 1;
  std::string backend = "cpu";
};

// --model, --prompt-ids, --slices, --backend.
void AddChainOptions(CLI::App* cmd, ChainOptions* o);

struct LoadedChain {
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<LocalChain> chain;
  std::vector<int32_t> prompt;
};

// Loads the chain with room for the prompt and `extra_positions` more; on an error prints it
// and exits. With --backend cuda in `layerpipe` (no CUDA backend) runs layerpipe-cuda instead.
LoadedChain LoadChain(const ChainOptions& o, int64_t extra_positions);

}  // namespace lp::cli
