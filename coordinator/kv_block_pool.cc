// The coordinator's KV-cache blocks (see kv_block_pool.h).
#include "coordinator/kv_block_pool.h"

#include <algorithm>
#include <cstdlib>

namespace lp {

KvBlockPool::KvBlockPool(int64_t num_blocks, int64_t block_tokens)
    : block_tokens_(block_tokens), blocks_(size_t(num_blocks)) {
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

uint64_t KvBlockPool::Key(uint64_t parent, std::span<const int32_t> tokens) {
  // FNV-1a over the tokens, seeded with the parent's key, then a splitmix64 finalizer. A
  // collision is harmless: Match compares the tokens and the chain before it shares a block.
  uint64_t h = parent ^ 0xcbf29ce484222325ull;
  for (int32_t t : tokens) h = (h ^ uint64_t(uint32_t(t))) * 0x100000001b3ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}

void KvBlockPool::Unregister(int32_t b) {
  Block& block = blocks_[size_t(b)];
  if (block.serial == 0) return;
  if (auto it = by_key_.find(block.key); it != by_key_.end() && it->second == b) by_key_.erase(it);
  block.serial = 0;
  block.tokens.clear();
}

int32_t KvBlockPool::Allocate() {
  int32_t b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    Unregister(b);
  } else {
    return -1;
  }
  blocks_[size_t(b)].refs = 1;
  ++used_;
  return b;
}

void KvBlockPool::Release(std::span<const int32_t> blocks) {
  // Last first: a chain's tail is then evicted before its head, which more prompts share.
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const int32_t b = *it;
    Block& block = blocks_[size_t(b)];
    if (block.refs <= 0) std::abort();  // released twice: it would go to two writers
    if (--block.refs > 0) continue;
    --used_;
    if (block.serial != 0) {
      block.lru = lru_.insert(lru_.end(), b);
    } else {
      free_.push_back(b);
    }
  }
}

std::vector<int32_t> KvBlockPool::Match(std::span<const int32_t> ids, int64_t max_blocks,
                                        Chain* chain) {
  *chain = {};
  std::vector<int32_t> out;
  const size_t bt = size_t(block_tokens_);
  for (int64_t i = 0; i < max_blocks && (size_t(i) + 1) * bt <= ids.size(); ++i) {
    const auto tokens = ids.subspan(size_t(i) * bt, bt);
    const uint64_t key = Key(chain->key, tokens);
    auto it = by_key_.find(key);
    if (it == by_key_.end()) break;
    Block& block = blocks_[size_t(it->second)];
    if (block.parent_serial != chain->serial || !std::ranges::equal(block.tokens, tokens)) break;
    if (block.refs++ == 0) {
      lru_.erase(block.lru);
      ++used_;
    }
    out.push_back(it->second);
    *chain = {key, block.serial};
  }
  return out;
}

bool KvBlockPool::Register(int32_t b, std::span<const int32_t> tokens, Chain* chain) {
  const uint64_t key = Key(chain->key, tokens);
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    const int32_t o = it->second;
    const Block& other = blocks_[size_t(o)];
    if (other.parent_serial == chain->serial && std::ranges::equal(other.tokens, tokens)) {
      // The same tokens after the same chain: that block holds what this one does, and the
      // chain goes on from it.
      *chain = {key, other.serial};
      return true;
    }
    // An orphan (the block before it was evicted and its chain registered anew) or a hash
    // collision: this block takes the key.
    Unregister(o);
    if (other.refs == 0) {
      lru_.erase(other.lru);
      free_.push_back(o);
    }
  }
  Block& block = blocks_[size_t(b)];
  if (block.serial != 0) return false;  // registered under another chain already
  block.key = key;
  block.serial = ++next_serial_;
  block.parent_serial = chain->serial;
  block.tokens.assign(tokens.begin(), tokens.end());
  by_key_[key] = b;
  *chain = {key, block.serial};
  return true;
}

void KvBlockPool::Clear() {
  for (int32_t b : lru_) free_.push_back(b);
  lru_.clear();
  for (size_t b = 0; b < blocks_.size(); ++b) Unregister(int32_t(b));
  by_key_.clear();
}

}  // namespace lp
