// Continuous batching over an in-process pipeline of WorkerCores (no network): greedy output
// equals the reference, concurrent requests get exactly what they get alone, seeded sampling
// is reproducible, the queue is bounded, cancellation frees the slot.
#include <gtest/gtest.h>

#include <deque>
#include <thread>

#include "common/checkpoint.h"
#include "coordinator/grpc_pipeline.h"
#include "coordinator/scheduler.h"
#include "fixture_util.h"
#include "engine/cpu/cpu_backend.h"
#include "worker/worker_core.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;

// The workers' cores chained in process, as the gRPC pipeline chains them over the network.
class LocalPipeline : public SyncPipeline {
 public:
  LocalPipeline(const std::string& dir, int64_t stages, const SliceLimits& limits) {
    auto ckpt = Checkpoint::Open(dir);
    EXPECT_TRUE(ckpt.ok());
    ckpt_ = std::move(*ckpt);
    for (const auto& spec : EvenSlices(ckpt_->config().num_layers, stages)) {
      auto slice = Slice::Load(*ckpt_, spec, limits, MakeCpuBackend());
      EXPECT_TRUE(slice.ok());
      cores_.push_back(std::make_unique<WorkerCore>(std::move(*slice), WorkerIdentity{}));
    }
  }
  absl::Status RunStep(const StepInput& step, std::vector<SampledToken>* sampled) override {
    ++steps;
    max_seqs_in_step = std::max<int64_t>(max_seqs_in_step, int64_t(step.seqs.size()));
    const auto request = MakeStepRequest(step, steps);
    std::vector<float> in, out;
    for (auto& core : cores_) {
      layerpipe::v1::StepResponse response;
      if (auto s = core->Step(request, in, &out, &response); !s.ok()) return s;
      for (const auto& t : response.sampled()) {
        sampled->push_back({t.slot(), t.id(), t.logprob(), {t.top_ids().begin(), t.top_ids().end()},
                            {t.top_logprobs().begin(), t.top_logprobs().end()}});
      }
      in.swap(out);
    }
    return absl::OkStatus();
  }
  bool Ready() const override { return true; }
  int64_t active_on_last() const { return cores_.back()->Stats().active_sequences(); }

  std::atomic<int64_t> steps{0};
  std::atomic<int64_t> max_seqs_in_step{0};

 private:
  std::unique_ptr<Checkpoint> ckpt_;
  std::vector<std::unique_ptr<WorkerCore>> cores_;
};

// Keeps up to three steps in flight, as a three-stage pipeline does, and checks that no
// sequence is in two of them at once.
class DeepPipeline : public Pipeline {
 public:
  explicit DeepPipeline(LocalPipeline* inner) : inner_(inner) {}
  int depth() const override { return 3; }
  void Submit(uint64_t tag, StepInput step) override {
    for (const auto& pending : pending_) {
      for (const auto& a : pending.second.seqs) {
        for (const auto& b : step.seqs) EXPECT_NE(a.slot, b.slot) << "a sequence in two micro-batches";
      }
    }
    pending_.push_back({tag, std::move(step)});
    max_in_flight = std::max<int>(max_in_flight.load(), int(pending_.size()));
  }
  bool Next(int, StepResult* result) override {
    if (pending_.empty()) return false;
    result->tag = pending_.front().first;
    result->sampled.clear();
    result->status = inner_->RunStep(pending_.front().second, &result->sampled);
    pending_.pop_front();
    return true;
  }
  bool Ready() const override { return true; }
  std::atomic<int> max_in_flight{0};

 private:
  LocalPipeline* inner_;
  std::deque<std::pair<uint64_t, StepInput>> pending_;
};

std::vector<int32_t> Collect(Request& r, FinishReason* reason = nullptr) {
  std::vector<int32_t> ids;
  while (true) {
    auto ev = r.Take(1000);
    for (const auto& t : ev.tokens) ids.push_back(t.id);
    if (ev.done) {
      EXPECT_TRUE(ev.error.ok()) << ev.error;
      if (reason) *reason = ev.finish;
      return ids;
    }
  }
}

GenerationParams Greedy(int64_t n) {
  GenerationParams p;
  p.max_tokens = n;
  return p;
}

TEST(Scheduler, GreedyMatchesReferenceThroughOneTwoThreeStages) {
  const auto expected = lp::testing::LoadJson(FixtureDir("qwen3-small-sharded") + "/expected.json");
  for (int64_t stages : {1, 2, 3}) {
    LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), stages, {4, 256, 64});
    Scheduler scheduler(&pipeline, {4, 256, 64, 8});
    for (const auto& c : expected["cases"]) {
      auto r = scheduler.Submit(c["prompt"].get<std::vector<int32_t>>(), Greedy(20));
      ASSERT_TRUE(r.ok());
      FinishReason reason;
      EXPECT_EQ(Collect(**r, &reason), c["greedy20"].get<std::vector<int32_t>>()) << stages;
      EXPECT_EQ(reason, FinishReason::kLength);
    }
  }
}

TEST(Scheduler, ConcurrentRequestsGetWhatTheyGetAlone) {
  // 16 requests of different lengths and parameters, with a small step budget so prefills are
  // chunked and mixed with decodes.
  std::vector<std::pair<std::vector<int32_t>, GenerationParams>> work;
  for (int i = 0; i < 16; ++i) {
    std::vector<int32_t> prompt;
    for (int j = 0; j < 3 + 5 * i; ++j) prompt.push_back((i * 131 + j * 17) % 4096);
    GenerationParams p = Greedy(4 + i % 5);
    if (i % 2) {
      p.sampling.temperature = 0.7f + 0.1f * float(i % 3);
      p.sampling.top_k = i % 4 ? 50 : 0;
      p.sampling.top_p = i % 3 ? 0.9f : 1.0f;
      p.sampling.min_p = i % 5 == 1 ? 0.05f : 0.0f;
      p.sampling.repetition_penalty = i % 4 == 1 ? 1.3f : 1.0f;
      p.sampling.seed = 1000 + i;
    }
    p.sampling.logprobs = i % 3;
    work.push_back({prompt, p});
  }
  std::vector<std::vector<int32_t>> alone;
  {
    LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 2, {16, 256, 32});
    Scheduler scheduler(&pipeline, {16, 256, 32, 32});
    for (auto& [prompt, params] : work) alone.push_back(Collect(**scheduler.Submit(prompt, params)));
  }
  LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 2, {16, 256, 32});
  Scheduler scheduler(&pipeline, {16, 256, 32, 32});
  std::vector<std::shared_ptr<Request>> requests;
  for (auto& [prompt, params] : work) requests.push_back(*scheduler.Submit(prompt, params));
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(Collect(*requests[i]), alone[i]) << "request " << i;
  }
  EXPECT_GT(pipeline.max_seqs_in_step, 4) << "requests were actually batched";

  // The same with three micro-batches in flight.
  LocalPipeline inner(FixtureDir("qwen3-small-sharded"), 2, {16, 256, 32});
  DeepPipeline deep(&inner);
  Scheduler pipelined(&deep, {16, 256, 32, 32});
  requests.clear();
  for (auto& [prompt, params] : work) requests.push_back(*pipelined.Submit(prompt, params));
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(Collect(*requests[i]), alone[i]) << "request " << i << ", pipelined";
  }
  EXPECT_EQ(deep.max_in_flight, 3);
}

TEST(Scheduler, StopIdsEndGeneration) {
  LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 1, {2, 256, 64});
  Scheduler scheduler(&pipeline, {2, 256, 64, 4});
  const auto expected = lp::testing::LoadJson(FixtureDir("qwen3-small-sharded") + "/expected.json");
  const auto& c = expected["cases"][0];
  GenerationParams p = Greedy(20);
  p.stop_ids.insert(c["greedy20"][2].get<int32_t>());
  FinishReason reason;
  auto ids = Collect(**scheduler.Submit(c["prompt"].get<std::vector<int32_t>>(), p), &reason);
  EXPECT_EQ(reason, FinishReason::kStop);
  ASSERT_LE(ids.size(), 3u);
  EXPECT_EQ(ids.back(), c["greedy20"][2].get<int32_t>());
}

TEST(Scheduler, BoundedQueueAndCancellationFreesTheSlot) {
  LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 2, {1, 256, 64});
  Scheduler scheduler(&pipeline, {1, 256, 64, 2});
  auto long_one = scheduler.Submit({1, 2, 3}, Greedy(200));
  ASSERT_TRUE(long_one.ok());
  // Wait until it runs, then fill the queue behind it.
  while ((*long_one)->Take(10).tokens.empty()) {}
  auto q1 = scheduler.Submit({4, 5}, Greedy(2));
  auto q2 = scheduler.Submit({6, 7}, Greedy(2));
  auto q3 = scheduler.Submit({8, 9}, Greedy(2));
  ASSERT_TRUE(q1.ok());
  ASSERT_TRUE(q2.ok());
  ASSERT_FALSE(q3.ok());
  EXPECT_EQ(q3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pipeline.active_on_last(), 1);
  (*long_one)->Cancel();
  EXPECT_EQ(Collect(**q1).size(), 2u);
  EXPECT_EQ(Collect(**q2).size(), 2u);
  // Finished requests are released at the step boundary right after their last token.
  for (int i = 0; i < 200 && pipeline.active_on_last() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(pipeline.active_on_last(), 0) << "every slot released";
}

TEST(Scheduler, RequestsCancelledWhileQueuedLeaveTheQueueAtOnce) {
  LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 1, {1, 256, 64});
  Scheduler scheduler(&pipeline, {1, 256, 64, 2});
  auto running = scheduler.Submit({1, 2, 3}, Greedy(200));
  ASSERT_TRUE(running.ok());
  while ((*running)->Take(10).tokens.empty()) {}
  auto q1 = scheduler.Submit({4, 5}, Greedy(2));
  auto q2 = scheduler.Submit({6, 7}, Greedy(2));
  ASSERT_TRUE(q1.ok() && q2.ok());
  (*q1)->Cancel();  // their clients went away while they waited
  (*q2)->Cancel();
  EXPECT_EQ(scheduler.queued(), 0);
  auto next = scheduler.Submit({8, 9}, Greedy(2));
  EXPECT_TRUE(next.ok()) << next.status();
  (*running)->Cancel();
  if (next.ok()) EXPECT_EQ(Collect(**next).size(), 2u);
}

TEST(Scheduler, ABurstIntoFreeSlotsIsNotRefusedByTheQueueBound) {
  // 16 free KV slots, a queue of 8: 16 requests at once all start.
  LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 1, {16, 256, 64});
  Scheduler scheduler(&pipeline, {16, 256, 64, 8});
  std::vector<std::shared_ptr<Request>> requests;
  for (int i = 0; i < 16; ++i) {
    auto r = scheduler.Submit({1, 2, int32_t(3 + i)}, Greedy(100));  // running while we look
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.status();
    requests.push_back(*r);
  }
  // Beyond the free slots, the queue's 8 still wait and the next is refused.
  std::vector<std::shared_ptr<Request>> waiting;
  for (int i = 0; i < 8; ++i) waiting.push_back(*scheduler.Submit({4, 5}, Greedy(2)));
  EXPECT_EQ(scheduler.Submit({6}, Greedy(2)).status().code(), absl::StatusCode::kResourceExhausted);
  for (auto& r : requests) EXPECT_EQ(Collect(*r).size(), 100u);
  for (auto& r : waiting) EXPECT_EQ(Collect(*r).size(), 2u);
}

}  // namespace
}  // namespace lp
