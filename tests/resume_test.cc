// Nothing lost when a worker dies, hangs or is replaced: real clusters of three CPU workers on
// the fixture model serve 16 greedy and 16 seeded-sampling streams while a worker is killed and
// restarted, stopped and continued, or every worker is restarted in turn; every stream ends with
// exactly the tokens of an uninterrupted run. A worker that does not come back fails the paused
// requests after recovery.resume_timeout, and nothing hangs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "cluster_client.h"

namespace lp::testing {
namespace {

using layerpipe::v1::GenerateRequest;
using layerpipe::v1::GenerateResponse;

constexpr int kStreams = 32;
const char* kLimits = "{max_batch: 32, max_context: 256, max_step_tokens: 128}";

ClusterOptions Options(const std::string& extra_yaml = "") {
  ClusterOptions o;
  o.limits_yaml = kLimits;
  o.extra_yaml = extra_yaml;
  return o;
}

// 16 greedy streams, then 16 with seeded sampling (temperature 0.8), of different prompts.
std::vector<GenerateRequest> Streams(int max_tokens) {
  std::vector<GenerateRequest> out;
  for (int i = 0; i < kStreams; ++i) {
    GenerateRequest r = Ids({1 + i, 2 + (i * 7) % 50, 3, 4 + i % 5}, max_tokens);
    if (i >= kStreams / 2) {
      r.set_temperature(0.8f);
      r.set_seed(uint64_t(100 + i));
    }
    out.push_back(r);
  }
  return out;
}

// Streams running at once, each read to its end on a thread of its own.
class Streaming {
 public:
  Streaming(const Cluster& cluster, const std::vector<GenerateRequest>& requests)
      : outcomes_(requests.size()) {
    for (size_t i = 0; i < requests.size(); ++i) {
      threads_.emplace_back([this, &cluster, r = requests[i], i] {
        auto stub = Stub(cluster);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        auto reader = stub->Generate(&ctx, r);
        GenerateResponse resp;
        Outcome& out = outcomes_[i];
        while (reader->Read(&resp)) {
          out.ids.insert(out.ids.end(), resp.token_ids().begin(), resp.token_ids().end());
          tokens_ += resp.token_ids_size();
        }
        out.status = reader->Finish();
      });
    }
  }
  ~Streaming() { Finish(); }
  // Waits until the streams have received `n` tokens together; false on timeout.
  bool WaitTokens(int64_t n, int timeout_ms) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (tokens_ < n) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  int64_t tokens() const { return tokens_; }
  const std::vector<Outcome>& Finish() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    return outcomes_;
  }

 private:
  std::vector<Outcome> outcomes_;
  std::vector<std::thread> threads_;
  std::atomic<int64_t> tokens_{0};
};

std::vector<std::vector<int32_t>> Uninterrupted(const Cluster& cluster,
                                                const std::vector<GenerateRequest>& requests) {
  Streaming run(cluster, requests);
  std::vector<std::vector<int32_t>> ids;
  for (const Outcome& o : run.Finish()) {
    EXPECT_TRUE(o.status.ok()) << o.status.error_message();
    ids.push_back(o.ids);
  }
  return ids;
}

// The requests' coordinator counters from ListWorkers.
layerpipe::v1::ListWorkersResponse Load(const Cluster& cluster) {
  auto stub = Stub(cluster);
  grpc::ClientContext ctx;
  layerpipe::v1::ListWorkersResponse resp;
  EXPECT_TRUE(stub->ListWorkers(&ctx, {}, &resp).ok());
  return resp;
}

// Runs the 32 streams once undisturbed, then again with `disturb` called once they are well
// under way: every stream must complete with the same tokens, and some must have resumed.
void ExpectNothingLost(Cluster& cluster, const std::function<void()>& disturb) {
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  const auto requests = Streams(120);
  const auto expected = Uninterrupted(cluster, requests);
  Streaming run(cluster, requests);
  ASSERT_TRUE(run.WaitTokens(kStreams * 15, 60000)) << cluster.log("coordinator");
  disturb();
  const auto& outcomes = run.Finish();
  int64_t received = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_TRUE(outcomes[i].status.ok())
        << "stream " << i << ": " << outcomes[i].status.error_message();
    EXPECT_EQ(outcomes[i].ids, expected[i]) << "stream " << i;
    received += int64_t(outcomes[i].ids.size());
  }
  EXPECT_EQ(received, int64_t(kStreams) * 120);
  const auto load = Load(cluster);
  EXPECT_GE(load.resumed_requests(), 1) << cluster.log("coordinator");
  EXPECT_EQ(load.paused_requests(), 0);
  EXPECT_EQ(WaitAllReleased(cluster, 3), (std::vector<int64_t>{0, 0, 0}));
}

TEST(ClusterResume, TheMiddleWorkerKilledAndRestartedAfterTwoSeconds) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, Options());
  ExpectNothingLost(cluster, [&] {
    cluster.KillWorker(1);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    cluster.StartWorker(1);
  });
}

TEST(ClusterResume, TheLastWorkerKilledAndRestartedAfterTwoSeconds) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, Options());
  ExpectNothingLost(cluster, [&] {
    cluster.KillWorker(2);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    cluster.StartWorker(2);
  });
}

TEST(ClusterResume, AWorkerHungForTenSeconds) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, Options());
  ExpectNothingLost(cluster, [&] {
    cluster.SignalWorker(1, SIGSTOP);
    std::this_thread::sleep_for(std::chrono::seconds(10));
    cluster.SignalWorker(1, SIGCONT);
  });
  EXPECT_NE(cluster.log("coordinator").find("did not answer a step in time"), std::string::npos);
}

TEST(ClusterResume, ARollingRestartOfEveryWorker) {
  // As systemd or Kubernetes would: SIGTERM, the worker finishes its step and exits 0, a new one
  // starts; the next worker goes once the cluster serves again.
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, Options());
  ExpectNothingLost(cluster, [&] {
    for (int i = 0; i < 3; ++i) {
      cluster.SignalWorker(i, SIGTERM);
      EXPECT_EQ(cluster.WaitWorkerExit(i, 15000), 0) << cluster.log("w" + std::to_string(i));
      cluster.StartWorker(i);
      ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 30000)) << cluster.log("coordinator");
    }
  });
  EXPECT_NE(cluster.log("w1").find("shutting down"), std::string::npos);
}

TEST(ClusterResume, ARequestSentWhileAWorkerIsDownWaitsAndIsServed) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, Options());
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  const Outcome before = Generate(cluster, Ids({5, 6, 7}, 20));
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  cluster.KillWorker(1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kNotServing, 10000));
  auto waiting = std::async(std::launch::async, [&] {
    return Generate(cluster, Ids({5, 6, 7}, 20));
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(Load(cluster).queued_requests(), 1);
  cluster.StartWorker(1);
  const Outcome after = waiting.get();
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.ids, before.ids);
}

TEST(ClusterResume, AWorkerThatDoesNotComeBackFailsThePausedRequestsAfterTheTimeout) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, Options("recovery: {resume_timeout: 3}\n"));
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  Streaming run(cluster, Streams(200));
  ASSERT_TRUE(run.WaitTokens(kStreams * 5, 60000)) << cluster.log("coordinator");
  const auto lost_at = std::chrono::steady_clock::now();
  cluster.KillWorker(1);
  // Sent during the outage: it waits with the paused ones, and fails with them.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const Outcome late = Generate(cluster, Ids({1, 2, 3}, 5));
  for (const Outcome& o : run.Finish()) {
    EXPECT_EQ(o.status.error_code(), grpc::StatusCode::UNAVAILABLE) << o.status.error_message();
    EXPECT_NE(o.status.error_message().find("resume timeout"), std::string::npos)
        << o.status.error_message();
  }
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::UNAVAILABLE) << late.status.error_message();
  const auto waited = std::chrono::steady_clock::now() - lost_at;
  EXPECT_GE(waited, std::chrono::milliseconds(2900));
  EXPECT_LT(waited, std::chrono::seconds(8));
  // Past the timeout new requests are refused at once; the queue has drained.
  const Outcome refused = Generate(cluster, Ids({1, 2}, 2));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  const auto load = Load(cluster);
  EXPECT_EQ(load.running_requests(), 0);
  EXPECT_EQ(load.queued_requests(), 0);
  EXPECT_EQ(load.paused_requests(), 0);
  // And it serves again once the worker is back.
  cluster.StartWorker(1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 30000)) << cluster.log("coordinator");
  EXPECT_TRUE(Generate(cluster, Ids({1, 2, 3}, 5)).status.ok());
}

}  // namespace
}  // namespace lp::testing
