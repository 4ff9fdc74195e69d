// Shared by the resume tests on CPU workers (resume_test.cc) and CUDA workers
// (gpu_cluster_test.cc): many streams read at once, and the check that a disturbance mid-run
// loses nothing.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "cluster_client.h"

namespace lp::testing {

constexpr int kResumeStreams = 32;

// 16 greedy streams, then 16 with seeded sampling (temperature 0.8), of different prompts.
inline std::vector<layerpipe::v1::GenerateRequest> Streams(int max_tokens) {
  std::vector<layerpipe::v1::GenerateRequest> out;
  for (int i = 0; i < kResumeStreams; ++i) {
    layerpipe::v1::GenerateRequest r = Ids({1 + i, 2 + (i * 7) % 50, 3, 4 + i % 5}, max_tokens);
    if (i >= kResumeStreams / 2) {
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
  Streaming(const Cluster& cluster, const std::vector<layerpipe::v1::GenerateRequest>& requests)
      : outcomes_(requests.size()) {
    for (size_t i = 0; i < requests.size(); ++i) {
      threads_.emplace_back([this, &cluster, r = requests[i], i] {
        auto stub = Stub(cluster);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        auto reader = stub->Generate(&ctx, r);
        layerpipe::v1::GenerateResponse resp;
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

inline std::vector<std::vector<int32_t>> Uninterrupted(
    const Cluster& cluster, const std::vector<layerpipe::v1::GenerateRequest>& requests) {
  Streaming run(cluster, requests);
  std::vector<std::vector<int32_t>> ids;
  for (const Outcome& o : run.Finish()) {
    EXPECT_TRUE(o.status.ok()) << o.status.error_message();
    ids.push_back(o.ids);
  }
  return ids;
}

// The requests' coordinator counters from ListWorkers.
inline layerpipe::v1::ListWorkersResponse Load(const Cluster& cluster) {
  auto stub = Stub(cluster);
  grpc::ClientContext ctx;
  layerpipe::v1::ListWorkersResponse resp;
  EXPECT_TRUE(stub->ListWorkers(&ctx, {}, &resp).ok());
  return resp;
}

// Runs the 32 streams once undisturbed, then again with `disturb` called once they are well
// under way: every stream must complete with the same tokens, and some must have resumed.
inline void ExpectNothingLost(Cluster& cluster, const std::function<void()>& disturb) {
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  const auto requests = Streams(120);
  const auto expected = Uninterrupted(cluster, requests);
  Streaming run(cluster, requests);
  ASSERT_TRUE(run.WaitTokens(kResumeStreams * 15, 60000)) << cluster.log("coordinator");
  disturb();
  const auto& outcomes = run.Finish();
  int64_t received = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_TRUE(outcomes[i].status.ok())
        << "stream " << i << ": " << outcomes[i].status.error_message();
    EXPECT_EQ(outcomes[i].ids, expected[i]) << "stream " << i;
    received += int64_t(outcomes[i].ids.size());
  }
  EXPECT_EQ(received, int64_t(kResumeStreams) * 120);
  const auto load = Load(cluster);
  EXPECT_GE(load.resumed_requests(), 1) << cluster.log("coordinator");
  EXPECT_EQ(load.paused_requests(), 0);
  const size_t workers = cluster.worker_count();
  EXPECT_EQ(WaitAllReleased(cluster, workers), std::vector<int64_t>(workers, 0));
}

}  // namespace lp::testing
