// The coordinator's KV block pool: allocation and release, prefix matching of registered blocks
// (whole blocks only, the chain before them included), least-recently-released eviction, and
// forgetting every registration when a stage is lost.
#include "coordinator/kv_block_pool.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace lp {
namespace {

using Ints = std::vector<int32_t>;

Ints Range(int32_t first, int64_t n) {
  Ints v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Registers blocks[i] as holding ids[16 i, 16 i + 16) for every full block.
void RegisterAll(KvBlockPool& pool, const Ints& blocks, const Ints& ids) {
  KvBlockPool::Chain chain;
  for (size_t i = 0; i < blocks.size() && (i + 1) * 16 <= ids.size(); ++i) {
    ASSERT_TRUE(pool.Register(blocks[i], std::span(ids).subspan(i * 16, 16), &chain));
  }
}

TEST(KvBlockPool, AllocatesEveryBlockOnceAndTakesThemBack) {
  KvBlockPool pool(4, 16);
  Ints got;
  for (int i = 0; i < 4; ++i) got.push_back(pool.Allocate());
  EXPECT_EQ(pool.Allocate(), -1);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (Ints{0, 1, 2, 3}));
  EXPECT_EQ(pool.used(), 4);
  pool.Release(got);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.available(), 4);
  EXPECT_EQ(pool.cached(), 0);  // nothing was registered
}

TEST(KvBlockPool, AMatchSharesTheRegisteredBlocksAPromptStartsWith) {
  KvBlockPool pool(8, 16);
  const Ints a = Range(100, 40);  // two full blocks and 8 tokens
  Ints blocks = {pool.Allocate(), pool.Allocate(), pool.Allocate()};
  RegisterAll(pool, blocks, a);
  pool.Release(blocks);
  EXPECT_EQ(pool.cached(), 2);  // the full ones; the third was never registered
  EXPECT_EQ(pool.used(), 0);

  // The same first 32 tokens, then others: both full blocks are shared.
  Ints b = Range(100, 32);
  b.insert(b.end(), {7, 7, 7, 7, 7});
  KvBlockPool::Chain chain;
  const Ints shared = pool.Match(b, 10, &chain);
  EXPECT_EQ(shared, (Ints{blocks[0], blocks[1]}));
  EXPECT_EQ(pool.used(), 2);
  EXPECT_EQ(pool.cached(), 0);
  EXPECT_NE(chain.serial, 0u);
  // At most max_blocks of them.
  KvBlockPool::Chain c1;
  EXPECT_EQ(pool.Match(b, 1, &c1), (Ints{blocks[0]}));
  pool.Release(std::vector<int32_t>{blocks[0]});
  pool.Release(shared);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.cached(), 2);
}

TEST(KvBlockPool, ABlockMatchesOnlyAfterTheSameTokensBeforeIt) {
  KvBlockPool pool(8, 16);
  const Ints a = Range(0, 32);
  Ints blocks = {pool.Allocate(), pool.Allocate()};
  RegisterAll(pool, blocks, a);
  pool.Release(blocks);
  // The second block's tokens, after a different first block: nothing matches.
  Ints b = Range(500, 16);
  b.insert(b.end(), a.begin() + 16, a.end());
  KvBlockPool::Chain chain;
  EXPECT_TRUE(pool.Match(b, 4, &chain).empty());
  // Fewer than a block's tokens match nothing either.
  EXPECT_TRUE(pool.Match(Range(0, 15), 4, &chain).empty());
  EXPECT_EQ(pool.used(), 0);
}

TEST(KvBlockPool, CachedBlocksAreEvictedLeastRecentlyReleasedFirst) {
  KvBlockPool pool(3, 16);
  const Ints a = Range(0, 16), b = Range(1000, 16);
  const int32_t ba = pool.Allocate();
  const int32_t bb = pool.Allocate();
  RegisterAll(pool, {ba}, a);
  RegisterAll(pool, {bb}, b);
  pool.Release(std::vector<int32_t>{ba});  // released first: evicted first
  pool.Release(std::vector<int32_t>{bb});
  EXPECT_EQ(pool.available(), 3);
  const int32_t fresh = pool.Allocate();  // the never-registered block
  const int32_t evicted = pool.Allocate();
  EXPECT_EQ(evicted, ba);
  KvBlockPool::Chain chain;
  EXPECT_TRUE(pool.Match(a, 4, &chain).empty());    // gone
  EXPECT_EQ(pool.Match(b, 4, &chain), (Ints{bb}));  // still cached
  pool.Release(Ints{fresh, evicted, bb});
  EXPECT_EQ(pool.used(), 0);
}

TEST(KvBlockPool, AReleasedChainIsEvictedTailFirst) {
  KvBlockPool pool(2, 16);
  const Ints a = Range(0, 32);
  Ints blocks = {pool.Allocate(), pool.Allocate()};
  RegisterAll(pool, blocks, a);
  pool.Release(blocks);
  EXPECT_EQ(pool.Allocate(), blocks[1]);  // the tail goes first: the head is what others share
  KvBlockPool::Chain chain;
  EXPECT_EQ(pool.Match(a, 4, &chain), (Ints{blocks[0]}));
}

TEST(KvBlockPool, AChainRegisteredAnewReplacesTheOrphansOfAnEvictedHead) {
  const Ints a = Range(0, 32);
  // The head released first (as two single blocks): it is evicted first, the tail stays cached
  // but can no longer be matched (its chain starts nowhere).
  KvBlockPool pool(3, 16);
  Ints x = {pool.Allocate(), pool.Allocate()};
  RegisterAll(pool, x, a);
  pool.Release(Ints{x[0]});  // head first in the LRU
  pool.Release(Ints{x[1]});
  const int32_t spare = pool.Allocate();  // the never-used block
  const int32_t taken = pool.Allocate();  // evicts the head; the tail is an orphan
  EXPECT_EQ(taken, x[0]);
  // The same tokens again in new blocks: the second takes the orphan's key.
  Ints y = {taken, spare};
  RegisterAll(pool, y, a);
  KvBlockPool::Chain chain;
  pool.Release(y);
  EXPECT_EQ(pool.Match(a, 4, &chain), y);
}

TEST(KvBlockPool, TheSameTokensRegisteredTwiceKeepTheFirstBlock) {
  KvBlockPool pool(4, 16);
  const Ints a = Range(0, 32);
  Ints first = {pool.Allocate(), pool.Allocate()};
  Ints second = {pool.Allocate(), pool.Allocate()};
  RegisterAll(pool, first, a);
  RegisterAll(pool, second, a);  // accepted: the chain goes on through the first's blocks
  pool.Release(second);
  EXPECT_EQ(pool.cached(), 0);  // the duplicates were never registered: free, not cached
  KvBlockPool::Chain chain;
  EXPECT_EQ(pool.Match(a, 4, &chain), first);
  pool.Release(first);
  pool.Release(first);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.cached(), 2);
}

TEST(KvBlockPool, ClearForgetsEveryRegistration) {
  KvBlockPool pool(4, 16);
  const Ints a = Range(0, 32);
  Ints blocks = {pool.Allocate(), pool.Allocate()};
  RegisterAll(pool, blocks, a);
  pool.Release(Ints{blocks[0]});
  pool.Clear();
  EXPECT_EQ(pool.cached(), 0);
  EXPECT_EQ(pool.used(), 1);  // still held by its sequence
  KvBlockPool::Chain chain;
  EXPECT_TRUE(pool.Match(a, 4, &chain).empty());
  pool.Release(Ints{blocks[1]});
  EXPECT_EQ(pool.available(), 4);
}

}  // namespace
}  // namespace lp
