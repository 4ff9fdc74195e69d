// The pipeline's KV-cache blocks, as the coordinator hands them out. Every stage holds the same
// pool of blocks for its own layers (each as big as its layers need), so one allocator here
// serves them all: a step names each sequence's blocks (SeqChunk::blocks) and every stage
// follows the same table.
//
// Prefix reuse: a full block whose step has come back may be registered under a key of all the
// tokens up to and including it. A new sequence whose ids start with registered blocks shares
// them (Match) and prefills only the rest. A block is shared only once it is full and written,
// and never written again while registered: a sequence writes only the blocks past its matched
// ones. Blocks without references stay cached, registered, until they are needed for writing
// (least recently released first).
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace lp {

// The KV-cache blocks and what became of them, since start.
struct KvBlockReport {
  int64_t total = 0;
  int64_t used = 0;    // held by sequences
  int64_t cached = 0;  // held by no sequence, kept for prefix reuse (free for writing too)
  int64_t prefix_hit_tokens = 0;  // prompt tokens not prefilled: their blocks were cached
  int64_t prefill_tokens = 0;     // tokens sent in prefill chunks (resumes included)
  int64_t preempted = 0;          // sequences preempted for want of blocks
};

class KvBlockPool {
 public:
  KvBlockPool(int64_t num_blocks, int64_t block_tokens);

  int64_t block_tokens() const { return block_tokens_; }
  int64_t total() const { return int64_t(blocks_.size()); }
  int64_t used() const { return used_; }                   // referenced by sequences
  int64_t cached() const { return int64_t(lru_.size()); }  // unreferenced, kept for reuse
  int64_t available() const { return total() - used_; }    // free now, cached ones included

  // A block to write, with one reference; -1 when every block is referenced.
  int32_t Allocate();
  // Drops one reference from each block (aborts on a block without one: a block released twice
  // would be handed to two writers).
  void Release(std::span<const int32_t> blocks);

  // A chain of registered blocks: what a sequence knows of its last registered block.
  struct Chain {
    uint64_t key = 0;     // of the tokens up to and including it (0: none yet)
    uint64_t serial = 0;  // its registration
  };
  // The registered blocks that hold the first blocks of `ids` (at most `max_blocks`), one
  // reference taken on each, and the chain after the last.
  std::vector<int32_t> Match(std::span<const int32_t> ids, int64_t max_blocks, Chain* chain);
  // Registers `block`, which holds `tokens` (one block's worth) after `chain`'s blocks, and
  // moves the chain on (through the block registered for them already, if any). False when
  // `block` is registered under another chain (the caller stops registering that sequence).
  bool Register(int32_t block, std::span<const int32_t> tokens, Chain* chain);
  // Forgets every registration (the stages' caches are gone: a worker restarted).
  void Clear();

 private:
  struct Block {
    int32_t refs = 0;
    uint64_t key = 0;
    uint64_t serial = 0;  // 0: not registered
    uint64_t parent_serial = 0;
    std::vector<int32_t> tokens;
    std::list<int32_t>::iterator lru;  // while cached
  };
  static uint64_t Key(uint64_t parent, std::span<const int32_t> tokens);
  void Unregister(int32_t b);

  int64_t block_tokens_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;  // unreferenced, not registered
  std::list<int32_t> lru_;     // unreferenced, registered: oldest first
  std::unordered_map<uint64_t, int32_t> by_key_;
  int64_t used_ = 0;
  uint64_t next_serial_ = 0;
};

}  // namespace lp
