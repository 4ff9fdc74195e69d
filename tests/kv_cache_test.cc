// The paged KV cache through real clusters of three CPU workers on the fixture model, counted
// through the coordinator's ListWorkers (what `layerpipe status` shows): a prompt that shares a
// 200-token prefix with an earlier one prefills only the rest and gets the tokens it gets on a
// fresh cluster; a pool far too small for its streams preempts some and every stream still ends
// with the tokens of an ample pool; and after finished, cancelled, timed-out and refused
// requests every block is free again.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "resume_harness.h"

namespace lp::testing {
namespace {

ClusterOptions Options(const std::string& limits) {
  ClusterOptions o;
  o.limits_yaml = limits;
  return o;
}

const char* kAmple = "{max_batch: 32, max_context: 256, max_step_tokens: 128}";

// Waits until no block is held (the last sequences leave at the scheduler's next boundary).
layerpipe::v1::ListWorkersResponse WaitAllBlocksFree(const Cluster& cluster) {
  layerpipe::v1::ListWorkersResponse load = Load(cluster);
  for (int i = 0; i < 100 && (load.kv_blocks_used() > 0 || load.running_requests() > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    load = Load(cluster);
  }
  return load;
}

TEST(PagedKvCache, ASharedPrefixIsPrefilledOnceAndChangesNoToken) {
  std::vector<int32_t> prefix;
  for (int i = 0; i < 200; ++i) prefix.push_back((i * 37 + 11) % 5000);
  std::vector<int32_t> a = prefix, b = prefix;
  a.insert(a.end(), {5, 6, 7});
  b.insert(b.end(), {900, 901, 902, 903, 904});
  Outcome b_fresh;
  {
    Cluster fresh(FixtureDir("qwen3-tiny"), 3, Options(kAmple));
    ASSERT_TRUE(fresh.WaitHealth(Health::kServing, 60000)) << fresh.log("coordinator");
    b_fresh = Generate(fresh, Ids(b, 16));
    ASSERT_TRUE(b_fresh.status.ok()) << b_fresh.status.error_message();
    EXPECT_EQ(Load(fresh).prefix_hit_tokens(), 0);
  }
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, Options(kAmple));
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  const Outcome a_first = Generate(cluster, Ids(a, 16));
  ASSERT_TRUE(a_first.status.ok()) << a_first.status.error_message();
  const auto after_a = Load(cluster);
  EXPECT_EQ(after_a.prefix_hit_tokens(), 0);
  EXPECT_EQ(after_a.prefill_tokens(), 203);
  EXPECT_EQ(after_a.kv_block_tokens(), 16);

  const Outcome b_cached = Generate(cluster, Ids(b, 16));
  ASSERT_TRUE(b_cached.status.ok()) << b_cached.status.error_message();
  EXPECT_EQ(b_cached.ids, b_fresh.ids);
  const auto after_b = Load(cluster);
  // 12 whole blocks of the 200 shared tokens were cached: only 13 of b's 205 were prefilled.
  EXPECT_EQ(after_b.prefix_hit_tokens(), 192);
  EXPECT_EQ(after_b.prefill_tokens() - after_a.prefill_tokens(), 13);

  // a again: the same tokens as the first time, its own whole blocks found too.
  const Outcome a_again = Generate(cluster, Ids(a, 16));
  EXPECT_EQ(a_again.ids, a_first.ids);
  EXPECT_EQ(Load(cluster).prefix_hit_tokens() - after_b.prefix_hit_tokens(), 192);
  const auto load = WaitAllBlocksFree(cluster);
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_GT(load.kv_blocks_cached(), 0);
}

TEST(PagedKvCache, PreemptionUnderATinyPoolCompletesEveryStreamWithTheSameTokens) {
  const auto requests = Streams(60);  // 32 streams of 64 tokens: 4 blocks each at the end
  std::vector<std::vector<int32_t>> ample;
  {
    Cluster cluster(FixtureDir("qwen3-tiny"), 3, Options(kAmple));
    ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
    ample = Uninterrupted(cluster, requests);
    EXPECT_EQ(Load(cluster).preempted_requests(), 0);
  }
  // 40 blocks for 128 blocks' worth of streams.
  Cluster cluster(
      FixtureDir("qwen3-tiny"), 3,
      Options("{max_batch: 32, max_context: 256, max_step_tokens: 128, kv_blocks: 40}"));
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  EXPECT_EQ(Uninterrupted(cluster, requests), ample);
  const auto load = WaitAllBlocksFree(cluster);
  EXPECT_GT(load.preempted_requests(), 0);
  EXPECT_EQ(load.kv_blocks_total(), 40);
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_EQ(load.running_requests(), 0);
  EXPECT_EQ(load.queued_requests(), 0);
}

TEST(PagedKvCache, EveryBlockComesBackAfterFinishedCancelledTimedOutAndRefusedRequests) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 3,
                  Options("{max_batch: 8, max_context: 256, max_step_tokens: 64, kv_blocks: 48}"));
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  std::vector<std::thread> clients;
  std::atomic<int> ok{0}, cancelled{0}, timed_out{0}, refused{0};
  for (int i = 0; i < 24; ++i) {
    clients.emplace_back([&, i] {
      std::vector<int32_t> prompt;
      for (int j = 0; j < 20 + 7 * i; ++j) prompt.push_back((i * 131 + j * 17) % 5000);
      auto req = Ids(prompt, 80);
      if (i % 6 == 5) req.set_max_tokens(100000);  // refused: past the context limit
      auto stub = Stub(cluster);
      grpc::ClientContext ctx;
      const int kind = i % 6;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       (kind == 4 ? std::chrono::milliseconds(300) : std::chrono::seconds(60)));
      auto reader = stub->Generate(&ctx, req);
      layerpipe::v1::GenerateResponse resp;
      int tokens = 0;
      while (reader->Read(&resp)) {
        tokens += resp.token_ids_size();
        if (kind == 3 && tokens >= 5) ctx.TryCancel();  // the client goes away mid-stream
      }
      const grpc::Status s = reader->Finish();
      if (s.ok()) ++ok;
      if (s.error_code() == grpc::StatusCode::CANCELLED) ++cancelled;
      if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) ++timed_out;
      if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) ++refused;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(cancelled, 4);
  EXPECT_EQ(refused, 4);
  EXPECT_EQ(ok + timed_out, 16);
  EXPECT_GE(ok, 12);
  const auto load = WaitAllBlocksFree(cluster);
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_EQ(load.running_requests(), 0);
  EXPECT_EQ(load.queued_requests(), 0);
  EXPECT_EQ(load.kv_blocks_total(), 48);
  // And the cluster serves on, from a pool where every block may be taken.
  const Outcome after = Generate(cluster, Ids({1, 2, 3}, 8));
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
}

}  // namespace
}  // namespace lp::testing
