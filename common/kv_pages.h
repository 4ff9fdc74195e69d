// The KV cache's pages: positions are kept in blocks of a fixed number of tokens, so that a
// sequence holds only the blocks it has filled (see engine/backend.h's KvCacheShape and
// coordinator/kv_block_pool.h). Shared by the planner, the coordinator and the engine.
#pragma once

#include <cstdint>

namespace lp {

// Positions per block unless limits.kv_block_tokens says otherwise (vLLM's default too: a
// sequence wastes at most 15 positions, and the attention kernels read 16 keys of a block
// in one go).
inline constexpr int64_t kDefaultKvBlockTokens = 16;

// Blocks that hold `tokens` positions.
inline constexpr int64_t KvBlocksFor(int64_t tokens, int64_t block_tokens) {
  return (tokens + block_tokens - 1) / block_tokens;
}

// Whether `n` is a block size the kernels take: a power of two from 16 to 256.
inline constexpr bool ValidKvBlockTokens(int64_t n) {
  return n >= 16 && n <= 256 && (n & (n - 1)) == 0;
}

}  // namespace lp
