// The case for batch invariance on the GPU: 24 concurrent requests (greedy and seeded
// sampling, prompts of many lengths) through a cluster of 3 CUDA workers sharing GPU 0, with
// batch_invariant on, get the tokens each gets alone, with max_batch 4 (requests queue and
// join as others finish) and 24 (all at once). Also prints, without asserting, how many agree
// with batch_invariant off. And the resume case: a worker of such a cluster, linked to its
// neighbours over CUDA IPC, killed mid-generation and restarted, and every stream ends with the
// tokens of an uninterrupted run. Run with LP_BIN_DIR naming the folder of the programs where
// they are not in the build's bin folder (the GPU machine's bundle).
#include <future>
#include <regex>

#include "cluster_client.h"
#include "cluster_harness.h"
#include "engine/cuda.h"
#include "resume_harness.h"

namespace lp {
namespace {

using lp::testing::Cluster;
using lp::testing::ClusterOptions;
using lp::testing::FixtureDir;
using lp::testing::Generate;
using lp::testing::Ids;
using lp::testing::Outcome;

std::vector<layerpipe::v1::GenerateRequest> Requests() {
  std::vector<layerpipe::v1::GenerateRequest> reqs;
  for (int i = 0; i < 24; ++i) {
    std::vector<int32_t> prompt;
    for (int j = 0; j < 1 + 5 * i; ++j) prompt.push_back((i * 7919 + j * 104729) % 151000);
    auto r = Ids(prompt, 6 + i % 7);
    if (i % 3 == 1) {
      r.set_temperature(0.9f);
      r.set_top_p(0.95f);
      r.set_seed(1000 + i);
    }
    reqs.push_back(r);
  }
  return reqs;
}

// How many of `reqs`, sent all at once, get the tokens they get alone; every failure counts.
int SameAsAlone(const Cluster& cluster, const std::vector<layerpipe::v1::GenerateRequest>& reqs) {
  std::vector<Outcome> alone;
  for (const auto& r : reqs) alone.push_back(Generate(cluster, r, 120));
  std::vector<std::future<Outcome>> together;
  for (const auto& r : reqs)
    together.push_back(
        std::async(std::launch::async, [&, r] { return Generate(cluster, r, 120); }));
  int same = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const Outcome o = together[i].get();
    EXPECT_TRUE(alone[i].status.ok() && o.status.ok())
        << "request " << i << ": " << alone[i].status.error_message() << o.status.error_message();
    EXPECT_EQ(int(o.ids.size()), reqs[i].max_tokens()) << "request " << i;
    same += o.status.ok() && o.ids == alone[i].ids;
  }
  return same;
}

TEST(GpuCluster, ConcurrentRequestsGetWhatTheyGetAloneWithBatchInvariance) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible: GPU tests skipped";
  const auto reqs = Requests();
  for (int max_batch : {4, 24}) {
    ClusterOptions o;
    o.cuda = true;
    o.extra_yaml = "batch_invariant: true\n";
    o.limits_yaml =
        "{max_batch: " + std::to_string(max_batch) + ", max_context: 256, max_step_tokens: 256}";
    Cluster cluster(FixtureDir("qwen3-tiny"), 3, o);
    ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 120000)) << cluster.log("coordinator");
    EXPECT_EQ(SameAsAlone(cluster, reqs), int(reqs.size())) << "max_batch " << max_batch;
  }
  ClusterOptions off;
  off.cuda = true;
  off.limits_yaml = "{max_batch: 24, max_context: 256, max_step_tokens: 256}";
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, off);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 120000)) << cluster.log("coordinator");
  std::printf("batch_invariant off, max_batch 24: %d of %zu requests got what they get alone\n",
              SameAsAlone(cluster, reqs), reqs.size());
}

TEST(GpuCluster, AWorkerKilledMidGenerationResumesOverCudaIpc) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible: GPU tests skipped";
  for (int victim : {1, 2}) {  // the middle worker; the last (the sampler)
    ClusterOptions o;
    o.cuda = true;
    o.extra_yaml = "batch_invariant: true\n";
    o.limits_yaml = "{max_batch: 32, max_context: 256, max_step_tokens: 128}";
    Cluster cluster(FixtureDir("qwen3-tiny"), 3, o);
    lp::testing::ExpectNothingLost(cluster, [&] {
      cluster.KillWorker(victim);
      std::this_thread::sleep_for(std::chrono::seconds(2));
      cluster.StartWorker(victim);
    });
    const std::string log = cluster.log("coordinator");
    // Both links over CUDA IPC at start, and the restarted worker's again.
    int ipc = 0;
    for (size_t at = log.find(": CUDA IPC"); at != std::string::npos;
         at = log.find(": CUDA IPC", at + 1)) {
      ++ipc;
    }
    EXPECT_GE(ipc, 3) << log;
    std::smatch resumed;
    EXPECT_TRUE(std::regex_search(log, resumed, std::regex("resumed [0-9]+ requests[^\n]*")))
        << log;
    std::printf("worker %d killed: %s\n", victim, resumed.str().c_str());
  }
}

}  // namespace
}  // namespace lp
