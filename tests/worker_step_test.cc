// A worker's answer to malformed or malicious steps (WorkerCore::Step, without a network): wrong
// sizes, slots and positions out of range, huge lengths, hidden states that do not match, bad
// sampling parameters, NaN activations. Each is INVALID_ARGUMENT, changes nothing, and the
// sequences already running carry on as if it had never come.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "common/checkpoint.h"
#include "engine/backend_factory.h"
#include "engine/slice.h"
#include "fixture_util.h"
#include "worker/worker_core.h"

namespace lp {
namespace {

using layerpipe::v1::StepRequest;
using layerpipe::v1::StepResponse;

constexpr SliceLimits kLimits{.max_batch = 4, .max_context = 32, .max_step_tokens = 16};
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The qwen3-small-sharded fixture in three stages: token ids in, hidden states, sampling.
class WorkerStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ckpt = Checkpoint::Open(testing::FixtureDir("qwen3-small-sharded"));
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ckpt_ = std::move(*ckpt);
    for (const SliceSpec& spec : EvenSlices(ckpt_->config().num_layers, 3)) {
      auto backend = MakeBackend("cpu:0");
      ASSERT_TRUE(backend.ok());
      auto slice = Slice::Load(*ckpt_, spec, kLimits, std::move(*backend));
      ASSERT_TRUE(slice.ok()) << slice.status();
      cores_.push_back(std::make_unique<WorkerCore>(std::move(*slice), WorkerIdentity{}));
    }
  }
  int64_t hidden_size() const { return ckpt_->config().hidden_size; }

  // One chunk of `n` tokens in `slot` from `start`, ids 1, 2, ..., sampled greedily.
  static StepRequest Chunk(int32_t slot, int32_t start, int32_t n) {
    StepRequest r;
    auto* s = r.add_seqs();
    s->set_slot(slot);
    s->set_start_pos(start);
    s->set_n_tokens(n);
    s->mutable_sampling()->set_top_k(1);
    for (int32_t i = 0; i < n; ++i) r.add_ids(1 + (start + i) % 100);
    return r;
  }
  absl::Status Step(int stage, const StepRequest& r, const std::vector<float>& hidden,
                    std::vector<float>* out, StepResponse* response) {
    return cores_[size_t(stage)]->Step(r, hidden, out, response);
  }
  // Runs `r` through the three stages; the last one's sampled ids.
  std::vector<int32_t> RunAll(const StepRequest& r) {
    std::vector<float> in, out;
    StepResponse response;
    for (int stage = 0; stage < 3; ++stage) {
      const absl::Status s = Step(stage, r, in, &out, &response);
      EXPECT_TRUE(s.ok()) << "stage " << stage << ": " << s;
      in.swap(out);
    }
    std::vector<int32_t> ids;
    for (const auto& t : response.sampled()) ids.push_back(t.id());
    return ids;
  }

  std::unique_ptr<Checkpoint> ckpt_;
  std::vector<std::unique_ptr<WorkerCore>> cores_;
};

TEST_F(WorkerStepTest, MalformedStepsAreInvalidAndTheRunningSequenceCarriesOn) {
  // The reference: a sequence of 4 prompt tokens and 3 decode steps, undisturbed.
  std::vector<int32_t> want;
  for (int32_t pos : {0, 4, 5, 6}) want.push_back(RunAll(Chunk(0, pos, pos == 0 ? 4 : 1))[0]);
  for (auto& core : cores_) core->Release(std::vector<int32_t>{0});

  using Change = std::function<void(StepRequest*)>;
  const std::vector<std::pair<const char*, Change>> bad = {
      {"slot -1", [](StepRequest* r) { r->mutable_seqs(0)->set_slot(-1); }},
      {"slot past max_batch", [](StepRequest* r) { r->mutable_seqs(0)->set_slot(4); }},
      {"repeated slot", [](StepRequest* r) { *r->add_seqs() = r->seqs(0); }},
      {"negative start", [](StepRequest* r) { r->mutable_seqs(0)->set_start_pos(-1); }},
      {"past the context", [](StepRequest* r) { r->mutable_seqs(0)->set_start_pos(0x7fffffff); }},
      {"no tokens", [](StepRequest* r) { r->mutable_seqs(0)->set_n_tokens(0); }},
      {"negative tokens", [](StepRequest* r) { r->mutable_seqs(0)->set_n_tokens(-5); }},
      {"huge length", [](StepRequest* r) { r->mutable_seqs(0)->set_n_tokens(0x7fffffff); }},
      {"ids short", [](StepRequest* r) { r->mutable_ids()->RemoveLast(); }},
      {"ids long", [](StepRequest* r) { r->add_ids(1); }},
      {"id outside the vocabulary", [](StepRequest* r) { r->set_ids(0, 1 << 30); }},
      {"negative id", [](StepRequest* r) { r->set_ids(0, -1); }},
      {"IPC slot out of range", [](StepRequest* r) { r->set_ipc_out_slot(99); }},
      {"NaN temperature",
       [](StepRequest* r) { r->mutable_seqs(0)->mutable_sampling()->set_temperature(kNaN); }},
      {"min_p above 1",
       [](StepRequest* r) { r->mutable_seqs(0)->mutable_sampling()->set_min_p(2); }},
      {"top_p above 1",
       [](StepRequest* r) { r->mutable_seqs(0)->mutable_sampling()->set_top_p(1.5f); }},
      {"huge logprobs",
       [](StepRequest* r) { r->mutable_seqs(0)->mutable_sampling()->set_logprobs(1 << 30); }},
      {"KV block outside the pool", [](StepRequest* r) { r->mutable_seqs(0)->add_blocks(1000); }},
      {"negative KV block", [](StepRequest* r) { r->mutable_seqs(0)->add_blocks(-1); }},
      {"more KV blocks than the context holds",
       [](StepRequest* r) {
         for (int b : {0, 1, 2}) r->mutable_seqs(0)->add_blocks(b);
       }},
      {"prefix ids not as many as the positions before the chunk",
       [](StepRequest* r) { r->mutable_seqs(0)->add_prefix_ids(5); }},
  };
  // Slot 1 is a bystander with a prompt in every cache; each bad step then aims at it.
  RunAll(Chunk(1, 0, 3));
  std::vector<int32_t> got;
  for (int32_t pos : {0, 4, 5, 6}) {
    for (const auto& [what, change] : bad) {
      StepRequest r = Chunk(1, 3, 1);
      change(&r);
      // The first worker checks everything; the others all but the ids' values (they only
      // embed on the first).
      const bool id_value = r.ids_size() == 1 && (r.ids(0) < 0 || r.ids(0) >= 1 << 30);
      for (int stage : {0, 1, 2}) {
        if (stage > 0 && id_value) continue;
        std::vector<float> in(stage == 0 ? 0 : size_t(r.ids_size() * hidden_size()), 1.0f), out;
        StepResponse response;
        const absl::Status s = Step(stage, r, in, &out, &response);
        EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument)
            << what << ", stage " << stage << ": " << s;
      }
    }
    got.push_back(RunAll(Chunk(0, pos, pos == 0 ? 4 : 1))[0]);
  }
  EXPECT_EQ(got, want);
  // And the bystander continues where it was.
  EXPECT_EQ(RunAll(Chunk(1, 3, 1)).size(), 1u);
}

// A sequence may start after a cached prefix (positions in blocks another sequence wrote) only
// where those blocks were written by this worker process: the result is what a full prefill
// gives, and a restarted worker (its cache empty) refuses it as a disagreement with the
// coordinator, FAILED_PRECONDITION, as it refuses a chunk that does not follow its slot.
TEST_F(WorkerStepTest, AStepAfterACachedPrefixNeedsBlocksThisWorkerWrote) {
  auto with_blocks = [](StepRequest r, std::vector<int32_t> blocks) {
    for (int32_t b : blocks) r.mutable_seqs(0)->add_blocks(b);
    return r;
  };
  RunAll(with_blocks(Chunk(2, 0, 16), {7, 3}));
  const auto full = RunAll(with_blocks(Chunk(2, 16, 2), {7, 3}));
  for (auto& core : cores_) core->Release(std::vector<int32_t>{2});
  RunAll(with_blocks(Chunk(0, 0, 16), {4, 5}));  // writes block 4 (positions 0 to 15)
  for (auto& core : cores_) core->Release(std::vector<int32_t>{0});
  const StepRequest reuse = with_blocks(Chunk(1, 16, 2), {4, 6});
  EXPECT_EQ(RunAll(reuse), full);

  auto backend = MakeBackend("cpu:0");
  ASSERT_TRUE(backend.ok());
  auto slice = Slice::Load(*ckpt_, EvenSlices(ckpt_->config().num_layers, 3)[0], kLimits,
                           std::move(*backend));
  ASSERT_TRUE(slice.ok());
  WorkerCore restarted(std::move(*slice), WorkerIdentity{});
  std::vector<float> out;
  StepResponse response;
  const absl::Status s = restarted.Step(reuse, {}, &out, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST_F(WorkerStepTest, HiddenStatesOfTheWrongSizeAreInvalid) {
  const StepRequest r = Chunk(0, 0, 2);
  std::vector<float> out;
  StepResponse response;
  for (int64_t n : {int64_t{0}, 2 * hidden_size() - 1, 2 * hidden_size() + 1, 3 * hidden_size()}) {
    for (int stage : {1, 2}) {
      const absl::Status s = Step(stage, r, std::vector<float>(size_t(n), 1.0f), &out, &response);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << n << " floats, stage " << stage;
    }
  }
  const absl::Status s =
      Step(1, r, std::vector<float>(size_t(2 * hidden_size()), 1.0f), &out, &response);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(out.size(), size_t(2 * hidden_size()));
}

TEST_F(WorkerStepTest, NaNActivationsStillSampleATokenOfTheVocabulary) {
  for (float temperature : {0.0f, 0.7f}) {
    StepRequest r = Chunk(0, 0, 2);
    r.mutable_seqs(0)->mutable_sampling()->set_top_k(0);
    r.mutable_seqs(0)->mutable_sampling()->set_temperature(temperature);
    r.mutable_seqs(0)->mutable_sampling()->set_logprobs(3);
    std::vector<float> out;
    StepResponse response;
    const std::vector<float> nan(size_t(2 * hidden_size()), kNaN);
    const absl::Status s = Step(2, r, nan, &out, &response);
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_EQ(response.sampled_size(), 1);
    EXPECT_GE(response.sampled(0).id(), 0);
    EXPECT_LT(response.sampled(0).id(), ckpt_->config().vocab_size);
    cores_[2]->Release(std::vector<int32_t>{0});
  }
}

}  // namespace
}  // namespace lp
