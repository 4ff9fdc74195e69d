// Continuous batching. The core (SchedulerCore) driven by hand with made-up step results, no
// thread and no waiting: admission up to the limits, chunked prefill, finishing, cancellation,
// failed steps, retirement. Then the whole scheduler over an in-process pipeline of WorkerCores
// (no network): greedy output equals the reference, concurrent requests get exactly what they
// get alone, seeded sampling is reproducible, the queue is bounded, cancellation frees the slot.
#include "coordinator/scheduler.h"

#include <gtest/gtest.h>

#include <deque>
#include <thread>

#include "common/checkpoint.h"
#include "common/protocol.h"
#include "coordinator/grpc_pipeline.h"
#include "coordinator/scheduler_core.h"
#include "engine/cpu/cpu_backend.h"
#include "fixture_util.h"
#include "worker/worker_core.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;

// ---- The core, by hand

GenerationParams Greedy(int64_t n) {
  GenerationParams p;
  p.max_tokens = n;
  return p;
}

std::shared_ptr<Request> AddOk(SchedulerCore& core, std::vector<int32_t> prompt,
                               GenerationParams params) {
  auto r = core.Add(std::move(prompt), std::move(params));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : nullptr;
}

// What the last stage would answer: `id` for every sequence of the step that samples.
StepResult Answer(const ScheduledStep& step, int32_t id) {
  StepResult r;
  r.tag = step.tag;
  for (const SeqChunk& s : step.input.seqs) {
    if (s.sampling) r.sampled.push_back({s.slot, id});
  }
  return r;
}

StepResult Failed(const ScheduledStep& step, absl::Status status) {
  StepResult r;
  r.tag = step.tag;
  r.status = std::move(status);
  return r;
}

std::vector<int32_t> Ids(const Request::Events& ev) {
  std::vector<int32_t> ids;
  for (const auto& t : ev.tokens) ids.push_back(t.id);
  return ids;
}

using Ints = std::vector<int32_t>;

TEST(SchedulerCore, AdmitsUpToTheBatchAndBoundsTheQueue) {
  SchedulerCore core({2, 64, 64, 1});
  auto a = AddOk(core, {1, 2, 3}, Greedy(4));
  auto b = AddOk(core, {4, 5}, Greedy(4));
  auto c = AddOk(core, {6}, Greedy(4));  // waits: 3 queued, 2 free slots
  auto d = core.Add({7}, Greedy(4));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(core.queued(), 3);

  auto steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  const StepInput& in = steps[0].input;
  ASSERT_EQ(in.seqs.size(), 2u);
  EXPECT_EQ(in.seqs[0].slot, 0);
  EXPECT_EQ(in.seqs[0].start_pos, 0);
  EXPECT_EQ(in.seqs[0].n_tokens, 3);
  EXPECT_TRUE(in.seqs[0].sampling.has_value());
  EXPECT_EQ(in.seqs[1].slot, 1);
  EXPECT_EQ(in.seqs[1].n_tokens, 2);
  EXPECT_EQ(in.ids, Ints({1, 2, 3, 4, 5}));
  EXPECT_TRUE(in.release_slots.empty());
  EXPECT_EQ(core.active(), 2);
  EXPECT_EQ(core.queued(), 1);
  EXPECT_EQ(core.state_of_slot(0), SeqState::kPrefilling);
  // Both sequences are in flight: nothing more to send.
  EXPECT_TRUE(core.Schedule(1).empty());
  EXPECT_EQ(core.in_flight(), 1);

  core.OnResult(Answer(steps[0], 42));
  EXPECT_EQ(Ids(a->Take(0)), Ints({42}));
  EXPECT_EQ(Ids(b->Take(0)), Ints({42}));
  EXPECT_TRUE(Ids(c->Take(0)).empty());
  EXPECT_EQ(core.state_of_slot(1), SeqState::kDecoding);
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  ASSERT_EQ(steps[0].input.seqs.size(), 2u);
  EXPECT_EQ(steps[0].input.seqs[0].start_pos, 3);  // the decode token's position
  EXPECT_EQ(steps[0].input.seqs[0].n_tokens, 1);
  EXPECT_EQ(steps[0].input.seqs[1].start_pos, 2);
  EXPECT_EQ(steps[0].input.ids, Ints({42, 42}));
}

TEST(SchedulerCore, SpreadsTheBatchOverOneMicroBatchPerStage) {
  SchedulerCore core({4, 64, 64, 4});
  for (int i = 0; i < 3; ++i) AddOk(core, {1, 2}, Greedy(4));
  auto steps = core.Schedule(2);  // 3 sequences over 2 stages: 2 + 1
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].input.seqs.size(), 2u);
  ASSERT_EQ(steps[1].input.seqs.size(), 1u);
  EXPECT_EQ(steps[1].input.seqs[0].slot, 2);
  EXPECT_NE(steps[0].tag, steps[1].tag);
  EXPECT_EQ(core.in_flight(), 2);
  EXPECT_TRUE(core.Schedule(2).empty());
  // The first comes back: only its sequences go again, as one micro-batch.
  core.OnResult(Answer(steps[0], 9));
  auto next = core.Schedule(2);
  ASSERT_EQ(next.size(), 1u);
  ASSERT_EQ(next[0].input.seqs.size(), 2u);
  EXPECT_EQ(next[0].input.seqs[0].slot, 0);
  EXPECT_EQ(next[0].input.seqs[1].slot, 1);
}

TEST(SchedulerCore, ChunksPrefillWithinTheStepBudgetAfterTheDecodes) {
  SchedulerCore core({2, 64, 4, 4});
  auto a = AddOk(core, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, Greedy(8));
  std::vector<std::pair<int32_t, int32_t>> chunks;  // start, n
  while (true) {
    auto steps = core.Schedule(1);
    ASSERT_EQ(steps.size(), 1u);
    const SeqChunk& s = steps[0].input.seqs.at(0);
    chunks.push_back({s.start_pos, s.n_tokens});
    EXPECT_EQ(s.sampling.has_value(), s.start_pos + s.n_tokens == 10);
    core.OnResult(Answer(steps[0], 77));
    if (s.sampling) break;
    EXPECT_EQ(core.state_of_slot(0), SeqState::kPrefilling);
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<int32_t, int32_t>>{{0, 4}, {4, 4}, {8, 2}}));
  EXPECT_EQ(Ids(a->Take(0)), Ints({77}));

  // A decoding and B prefilling share a step: A's token first, B's chunk takes the rest.
  auto b = AddOk(core, {20, 21, 22, 23, 24, 25}, Greedy(8));
  auto steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  const StepInput& in = steps[0].input;
  ASSERT_EQ(in.seqs.size(), 2u);
  EXPECT_EQ(in.seqs[0].slot, 0);
  EXPECT_EQ(in.seqs[0].start_pos, 10);
  EXPECT_EQ(in.seqs[0].n_tokens, 1);
  EXPECT_EQ(in.seqs[1].slot, 1);
  EXPECT_EQ(in.seqs[1].start_pos, 0);
  EXPECT_EQ(in.seqs[1].n_tokens, 3);
  EXPECT_FALSE(in.seqs[1].sampling.has_value());
  EXPECT_EQ(in.ids, Ints({77, 20, 21, 22}));
  core.OnResult(Answer(steps[0], 78));
  EXPECT_EQ(Ids(a->Take(0)), Ints({78}));
  EXPECT_TRUE(Ids(b->Take(0)).empty());
}

TEST(SchedulerCore, FinishesOnMaxTokensStopIdsAndTheContext) {
  SchedulerCore core({3, 5, 64, 4});
  auto by_length = AddOk(core, {1}, Greedy(2));
  GenerationParams stop = Greedy(10);
  stop.stop_ids = {9};
  auto by_stop = AddOk(core, {1}, stop);
  auto by_context = AddOk(core, {1, 2, 3, 4}, Greedy(10));  // room for one token

  auto steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  core.OnResult(Answer(steps[0], 9));  // the stop id for the second, a plain token for the rest
  auto ev = by_stop->Take(0);
  EXPECT_EQ(Ids(ev), Ints({9}));
  EXPECT_TRUE(ev.done);
  EXPECT_EQ(ev.finish, FinishReason::kStop);
  ev = by_context->Take(0);
  EXPECT_TRUE(ev.done);
  EXPECT_EQ(ev.finish, FinishReason::kLength);
  EXPECT_EQ(core.state_of_slot(1), SeqState::kFinished);
  ev = by_length->Take(0);
  EXPECT_FALSE(ev.done);

  steps = core.Schedule(1);  // the finished two leave; their slots go out with the next step
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].input.release_slots, Ints({1, 2}));
  ASSERT_EQ(steps[0].input.seqs.size(), 1u);
  EXPECT_EQ(core.active(), 1);
  core.OnResult(Answer(steps[0], 5));
  ev = by_length->Take(0);
  EXPECT_EQ(Ids(ev), Ints({5}));
  EXPECT_TRUE(ev.done);
  EXPECT_EQ(ev.finish, FinishReason::kLength);
  EXPECT_TRUE(ev.error.ok());
}

TEST(SchedulerCore, DecodeAheadSendsTheNextStepBeforeTheAnswerAndDropsTheSurplusToken) {
  SchedulerLimits limits{2, 64, 64, 4};
  limits.decode_ahead = true;
  SchedulerCore core(limits);
  GenerationParams stop = Greedy(10);
  stop.stop_ids = {9};
  auto a = AddOk(core, {1, 2, 3}, stop);
  auto b = AddOk(core, {4, 5}, Greedy(3));

  auto steps = core.Schedule(1);  // the prefills: no token to go ahead of yet
  ASSERT_EQ(steps.size(), 1u);
  core.OnResult(Answer(steps[0], 7));
  steps = core.Schedule(1);  // a decode step, and the step ahead of it
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].input.ids, Ints({7, 7}));
  EXPECT_EQ(steps[1].input.ids, Ints({kSampledBefore, kSampledBefore}));
  ASSERT_EQ(steps[1].input.seqs.size(), 2u);
  EXPECT_EQ(steps[1].input.seqs[0].start_pos, 4);  // after the token that step 0 samples
  EXPECT_EQ(steps[1].input.seqs[1].start_pos, 3);
  EXPECT_TRUE(core.Schedule(1).empty());  // at most one step ahead

  core.OnResult(Answer(steps[0], 9));  // a's stop id; b's second token, its last but one
  auto ev = a->Take(0);
  EXPECT_EQ(Ids(ev), Ints({7, 9}));
  EXPECT_TRUE(ev.done);
  auto next = core.Schedule(1);  // a is done; b's step in flight ends it by length: none ahead
  EXPECT_TRUE(next.empty());
  core.OnResult(Answer(steps[1], 5));  // a's surplus token is dropped, b gets its third
  EXPECT_TRUE(a->Take(0).tokens.empty());
  ev = b->Take(0);
  EXPECT_EQ(Ids(ev), Ints({7, 9, 5}));
  EXPECT_TRUE(ev.done);
  next = core.Schedule(1);  // both leave now that nothing of them is in flight
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].input.release_slots, Ints({0, 1}));
  EXPECT_EQ(core.active(), 0);
}

// The worker refuses a decode step (an error of its own, not a lost stage) while the step ahead
// of it is in flight: that one cannot run (no token to go on from), and its FAILED_PRECONDITION
// is no lost stage either. The refused step's sequences fail; another sequence in the step ahead
// is sent again, and nothing else fails or pauses (without resuming, a loss would fail it).
TEST(SchedulerCore, AStepAheadOfARefusedOneFailsOnlyTheRefusedSequences) {
  SchedulerLimits limits{3, 64, 2, 4, std::chrono::milliseconds(0)};
  limits.decode_ahead = true;
  SchedulerCore core(limits);
  auto a = AddOk(core, {1}, Greedy(2));  // its next token is its last: no step ahead for it
  auto b = AddOk(core, {2}, Greedy(10));
  auto steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  core.OnResult(Answer(steps[0], 7));
  auto c = AddOk(core, {3, 4, 5}, Greedy(2));
  steps = core.Schedule(1);  // a and b decode; ahead: b, and c's first prompt token
  ASSERT_EQ(steps.size(), 2u);
  ASSERT_EQ(steps[1].input.seqs.size(), 2u);
  EXPECT_EQ(steps[1].input.ids, Ints({kSampledBefore, 3}));
  const int32_t c_slot = steps[1].input.seqs[1].slot;
  core.OnResult(Failed(steps[0], absl::InternalError("refused by the worker")));
  core.OnResult(Failed(steps[1], absl::FailedPreconditionError("slot 1: no token sampled here")));
  for (auto* r : {&a, &b}) {
    const auto ev = (*r)->Take(0);
    EXPECT_TRUE(ev.done);
    EXPECT_EQ(ev.error.code(), absl::StatusCode::kInternal) << ev.error;
  }
  EXPECT_FALSE(c->Take(0).done);
  EXPECT_EQ(core.paused(), 0);
  steps = core.Schedule(1);  // c's prompt again from its start
  ASSERT_FALSE(steps.empty());
  ASSERT_EQ(steps[0].input.seqs.size(), 1u);
  EXPECT_EQ(steps[0].input.seqs[0].slot, c_slot);
  EXPECT_EQ(steps[0].input.seqs[0].start_pos, 0);
  EXPECT_EQ(steps[0].input.ids, Ints({3, 4}));
}

TEST(SchedulerCore, RetiringFreesTheSlotForTheNextRequest) {
  SchedulerCore core({1, 64, 64, 4});
  auto a = AddOk(core, {1, 2}, Greedy(1));
  auto b = AddOk(core, {3, 4, 5}, Greedy(1));
  auto steps = core.Schedule(1);
  ASSERT_EQ(steps[0].input.seqs.size(), 1u);
  EXPECT_EQ(core.queued(), 1);
  core.OnResult(Answer(steps[0], 6));
  EXPECT_TRUE(a->Take(0).done);
  EXPECT_TRUE(core.idle()) << "nothing in flight, no release pending yet";
  // A leaves and its slot goes out to the workers; B is admitted at the next boundary (waiting
  // requests join before finished ones leave).
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].input.release_slots, Ints({0}));
  EXPECT_TRUE(steps[0].input.seqs.empty());
  EXPECT_EQ(core.active(), 0);
  EXPECT_EQ(core.queued(), 1);
  core.OnResult(Answer(steps[0], 0));
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].input.release_slots.empty());
  ASSERT_EQ(steps[0].input.seqs.size(), 1u);
  EXPECT_EQ(steps[0].input.seqs[0].slot, 0);
  EXPECT_EQ(steps[0].input.ids, Ints({3, 4, 5}));
  EXPECT_EQ(core.queued(), 0);
  EXPECT_EQ(core.active(), 1);
  core.OnResult(Answer(steps[0], 7));
  EXPECT_EQ(Ids(b->Take(0)), Ints({7}));
  // The last release travels alone.
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].input.seqs.empty());
  EXPECT_EQ(steps[0].input.release_slots, Ints({0}));
  EXPECT_EQ(core.active(), 0);
  core.OnResult(Answer(steps[0], 0));
  EXPECT_TRUE(core.idle());
  EXPECT_FALSE(core.has_work());
  EXPECT_TRUE(core.Schedule(1).empty());
}

TEST(SchedulerCore, CancelledRequestsLeaveAtTheNextBoundary) {
  SchedulerCore core({2, 64, 64, 4});
  auto running = AddOk(core, {1}, Greedy(10));
  auto in_flight = AddOk(core, {2}, Greedy(10));
  auto waiting = AddOk(core, {3}, Greedy(10));
  waiting->Cancel();              // while queued: it leaves the queue, never takes a slot
  EXPECT_EQ(core.queued(), 2);    // the other two
  auto steps = core.Schedule(2);  // one sequence per micro-batch
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(core.active(), 2);
  core.OnResult(Answer(steps[0], 5));
  running->Cancel();
  in_flight->Cancel();
  auto next = core.Schedule(2);
  // The idle one leaves at once; the one in flight stays until its step is back.
  ASSERT_EQ(next.size(), 1u);
  EXPECT_TRUE(next[0].input.seqs.empty());
  EXPECT_EQ(next[0].input.release_slots, Ints({0}));
  EXPECT_EQ(core.state_of_slot(1), SeqState::kCancelled);
  core.OnResult(Answer(next[0], 0));
  core.OnResult(Answer(steps[1], 5));
  EXPECT_TRUE(Ids(in_flight->Take(0)).empty()) << "nothing more for a cancelled request";
  next = core.Schedule(2);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].input.release_slots, Ints({1}));
  EXPECT_EQ(core.active(), 0);
}

TEST(SchedulerCore, WithoutResumingAFailedStepFailsItsRequestsAndALostStageFailsAll) {
  SchedulerCore core({4, 64, 64, 4, std::chrono::milliseconds(0)});
  auto a = AddOk(core, {1}, Greedy(10));
  auto b = AddOk(core, {2}, Greedy(10));
  auto c = AddOk(core, {3}, Greedy(10));
  auto steps = core.Schedule(3);
  ASSERT_EQ(steps.size(), 3u);
  // A worker refuses the first micro-batch: only its request fails, with the worker's code.
  core.OnResult(Failed(steps[0], absl::InvalidArgumentError("bad slot")));
  auto ev = a->Take(0);
  EXPECT_TRUE(ev.done);
  EXPECT_EQ(ev.error.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ev.error.message(), "generation failed: bad slot");
  EXPECT_FALSE(b->Take(0).done);
  // A stage is lost with the second: every running request fails, the one in flight too.
  core.OnResult(Failed(steps[1], absl::UnavailableError("worker w1 is gone")));
  for (auto* r : {&b, &c}) {
    ev = (*r)->Take(0);
    EXPECT_TRUE(ev.done);
    EXPECT_EQ(ev.error.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(ev.error.message(), "generation failed: worker w1 is gone");
  }
  core.OnResult(Answer(steps[2], 8));  // comes back after all: nothing reaches its request
  EXPECT_TRUE(Ids(c->Take(0)).empty());
  auto next = core.Schedule(3);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].input.release_slots, Ints({0, 1, 2}));
  EXPECT_TRUE(next[0].input.seqs.empty());
}

TEST(SchedulerCore, ALostStagePausesEverySequenceAndTheyResumeFromTheirIds) {
  SchedulerCore core({4, 64, 64, 4});  // resume_timeout 60 s
  const auto t0 = SchedulerClock::now();
  auto a = AddOk(core, {1, 2, 3}, Greedy(10));
  auto b = AddOk(core, {4, 5}, Greedy(10));
  auto steps = core.Schedule(2, true, t0);  // a and b in micro-batches of their own
  ASSERT_EQ(steps.size(), 2u);
  core.OnResult(Answer(steps[0], 7), t0);
  core.OnResult(Answer(steps[1], 8), t0);
  EXPECT_EQ(Ids(a->Take(0)), Ints({7}));
  EXPECT_EQ(Ids(b->Take(0)), Ints({8}));
  steps = core.Schedule(2, true, t0);  // decodes
  ASSERT_EQ(steps.size(), 2u);
  // The first micro-batch loses a stage: both sequences pause, nothing reaches the clients; the
  // second comes back all the same, but its token is not kept (the resume samples it again).
  core.OnResult(Failed(steps[0], absl::UnavailableError("worker w1 was lost")), t0);
  EXPECT_EQ(core.state_of_slot(0), SeqState::kPaused);
  EXPECT_EQ(core.state_of_slot(1), SeqState::kPaused);
  EXPECT_EQ(core.paused(), 2);
  core.OnResult(Answer(steps[1], 9), t0);
  EXPECT_TRUE(Ids(b->Take(0)).empty());
  EXPECT_FALSE(a->Take(0).done);
  // Not ready: nothing is sent, and new requests may queue (the outage is held).
  EXPECT_TRUE(core.Schedule(2, false, t0).empty());
  EXPECT_TRUE(core.holding());
  auto c = AddOk(core, {6}, Greedy(10));
  // Ready again: each is prefilled again from prompt + generated, sampling on the last chunk;
  // the new request joins.
  steps = core.Schedule(1, true, t0 + std::chrono::seconds(5));
  EXPECT_TRUE(core.holding()) << "a next outage is held too";
  EXPECT_EQ(core.paused(), 0);
  EXPECT_EQ(core.resumed(), 2);
  ASSERT_EQ(steps.size(), 1u);
  const StepInput& in = steps[0].input;
  ASSERT_EQ(in.seqs.size(), 3u);
  EXPECT_EQ(in.seqs[0].slot, 0);
  EXPECT_EQ(in.seqs[0].start_pos, 0);
  EXPECT_EQ(in.seqs[0].n_tokens, 4);
  EXPECT_TRUE(in.seqs[0].sampling.has_value());
  EXPECT_EQ(in.seqs[1].n_tokens, 3);
  EXPECT_EQ(in.seqs[2].n_tokens, 1);
  EXPECT_EQ(in.ids, Ints({1, 2, 3, 7, 4, 5, 8, 6}));
  EXPECT_FALSE(core.TakeResumeReport()) << "not before the resumed have their next token";
  core.OnResult(Answer(steps[0], 10), t0 + std::chrono::milliseconds(5250));
  const auto report = core.TakeResumeReport();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->requests, 2);
  EXPECT_EQ(report->tokens, 4 + 3);
  EXPECT_EQ(report->took, std::chrono::milliseconds(250));
  EXPECT_FALSE(core.TakeResumeReport()) << "once";
  EXPECT_EQ(Ids(a->Take(0)), Ints({10}));
  EXPECT_EQ(Ids(b->Take(0)), Ints({10}));
  EXPECT_EQ(core.state_of_slot(0), SeqState::kDecoding);
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].input.seqs[0].start_pos, 4);  // decoding on from where it was
  EXPECT_EQ(steps[0].input.ids, Ints({10, 10, 10}));
  EXPECT_TRUE(c);
}

TEST(SchedulerCore, ARequestQueuedAfterAStaleNotReadyReadWaitsForTheNextBoundary) {
  // The driver reads "not ready"; the pipeline becomes ready and a request is queued on that
  // newer read before the driver's step boundary runs with the older one.
  SchedulerCore core({4, 64, 64, 4, std::chrono::milliseconds(0)});
  const auto lost_at = SchedulerClock::now() - std::chrono::milliseconds(10);
  auto a = AddOk(core, {1}, Greedy(10));
  auto steps = core.Schedule(1, true, lost_at);
  core.OnResult(Failed(steps[0], absl::UnavailableError("worker w1 is gone")), lost_at);
  EXPECT_TRUE(a->Take(0).done);
  const auto read_at = lost_at + std::chrono::milliseconds(1);
  auto b = AddOk(core, {2}, Greedy(1));  // queued now, after read_at
  EXPECT_TRUE(core.Schedule(1, false, read_at).empty());
  EXPECT_EQ(core.queued(), 1) << b->Take(0).error;
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  core.OnResult(Answer(steps[0], 5));
  auto ev = b->Take(0);
  EXPECT_TRUE(ev.done);
  EXPECT_TRUE(ev.error.ok()) << ev.error;
  EXPECT_EQ(Ids(ev), Ints({5}));
}

TEST(SchedulerCore, ARequestQueuedBeforeTheFirstReadyBoundaryWaitsNoLongerThanTheTimeout) {
  // Admitted while the pipeline said it was ready, which then went before this core saw it so.
  const auto timeout = std::chrono::milliseconds(1000);
  SchedulerCore core({1, 64, 64, 4, timeout});
  auto a = AddOk(core, {1, 2}, Greedy(4));
  const auto t0 = SchedulerClock::now();
  EXPECT_TRUE(core.Schedule(1, false, t0).empty());
  EXPECT_FALSE(a->Take(0).done);
  EXPECT_TRUE(core.Schedule(1, false, t0 + timeout).empty());
  const auto ev = a->Take(0);
  EXPECT_TRUE(ev.done);
  EXPECT_EQ(ev.error.code(), absl::StatusCode::kUnavailable) << ev.error;
  EXPECT_EQ(core.queued(), 0);
}

TEST(SchedulerCore, PausedRequestsFailAfterTheResumeTimeoutAndTheQueueWithThem) {
  const auto timeout = std::chrono::milliseconds(3000);
  SchedulerCore core({1, 64, 64, 4, timeout});
  const auto t0 = SchedulerClock::now();
  auto a = AddOk(core, {1, 2}, Greedy(10));
  auto steps = core.Schedule(1, true, t0);
  core.OnResult(Answer(steps[0], 7), t0);
  steps = core.Schedule(1, true, t0);
  core.OnResult(Failed(steps[0], absl::FailedPreconditionError("slot 0 holds 0 positions")), t0);
  EXPECT_EQ(core.paused(), 1);
  // A worker that does not come back.
  EXPECT_TRUE(core.Schedule(1, false, t0 + std::chrono::seconds(1)).empty());
  auto waiting = AddOk(core, {3}, Greedy(10));
  EXPECT_TRUE(core.holding());
  EXPECT_TRUE(core.Schedule(1, false, t0 + std::chrono::seconds(2)).empty());
  EXPECT_FALSE(a->Take(0).done);
  EXPECT_TRUE(core.Schedule(1, false, t0 + timeout).empty());
  EXPECT_FALSE(core.holding()) << "past the timeout (from the outage's start), nothing is held";
  for (auto* r : {&a, &waiting}) {
    auto ev = (*r)->Take(0);
    EXPECT_TRUE(ev.done);
    EXPECT_EQ(ev.error.code(), absl::StatusCode::kFailedPrecondition) << ev.error;
    EXPECT_NE(ev.error.message().find("slot 0 holds 0 positions"), std::string::npos);
  }
  EXPECT_EQ(core.paused(), 0);
  EXPECT_EQ(core.queued(), 0);
  EXPECT_EQ(core.active(), 0);
  EXPECT_FALSE(core.has_work());
}

TEST(SchedulerCore, ASequenceThatKeepsFailingAfterResumingStillTimesOut) {
  SchedulerCore core({1, 64, 64, 4, std::chrono::milliseconds(3000)});
  const auto t0 = SchedulerClock::now();
  auto a = AddOk(core, {1, 2}, Greedy(10));
  auto steps = core.Schedule(1, true, t0);
  core.OnResult(Answer(steps[0], 7), t0);
  // The pipeline answers, but every step is refused: the clock runs from the first loss.
  for (int s = 0; s < 3; ++s) {
    steps = core.Schedule(1, true, t0 + std::chrono::seconds(s));
    ASSERT_EQ(steps.size(), 1u);
    core.OnResult(Failed(steps[0], absl::UnavailableError("lost")), t0 + std::chrono::seconds(s));
  }
  EXPECT_FALSE(a->Take(0).done);
  steps = core.Schedule(1, true, t0 + std::chrono::seconds(3));
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].input.seqs.empty()) << "it failed: only its slot's release goes out";
  auto ev = a->Take(0);
  EXPECT_TRUE(ev.done);
  EXPECT_EQ(ev.error.code(), absl::StatusCode::kUnavailable);
}

TEST(SchedulerCore, FailAllReachesRunningAndWaitingRequests) {
  SchedulerCore core({1, 64, 64, 4});
  auto running = AddOk(core, {1}, Greedy(10));
  auto waiting = AddOk(core, {2}, Greedy(10));
  auto steps = core.Schedule(1);
  core.Discard(Answer(steps[0], 3));
  EXPECT_EQ(core.in_flight(), 0);
  core.FailAll(absl::UnavailableError("the coordinator is shutting down"));
  for (auto* r : {&running, &waiting}) {
    auto ev = (*r)->Take(0);
    EXPECT_TRUE(Ids(ev).empty());
    EXPECT_TRUE(ev.done);
    EXPECT_EQ(ev.error.code(), absl::StatusCode::kUnavailable);
  }
}

// ---- KV-cache blocks, by hand

Ints Range(int32_t first, int64_t n) {
  Ints v;
  for (int64_t i = 0; i < n; ++i) v.push_back(first + int32_t(i));
  return v;
}

SchedulerLimits Paged(int64_t max_batch, int64_t max_context, int64_t kv_blocks) {
  return {max_batch, max_context, 256, 8, std::chrono::milliseconds(60000), kv_blocks, 16};
}

TEST(SchedulerCore, PromptsThatStartWithCachedBlocksPrefillOnlyTheRest) {
  SchedulerCore core(Paged(4, 256, 0));
  auto a = AddOk(core, Range(1, 40), Greedy(3));  // two full blocks and 8 tokens
  auto steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  const Ints a_blocks = steps[0].input.seqs[0].blocks;
  ASSERT_EQ(a_blocks.size(), 3u);
  core.OnResult(Answer(steps[0], 9));  // the first two blocks are written: registered
  EXPECT_EQ(core.kv_blocks().prefill_tokens, 40);

  Ints prompt = Range(1, 32);
  prompt.insert(prompt.end(), {77, 78, 79});
  auto b = AddOk(core, prompt, Greedy(1));
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  ASSERT_EQ(steps[0].input.seqs.size(), 2u);  // a's decode token, then b's prefill
  const SeqChunk& chunk = steps[0].input.seqs[1];
  EXPECT_EQ(chunk.start_pos, 32);
  EXPECT_EQ(chunk.n_tokens, 3);
  ASSERT_EQ(chunk.blocks.size(), 3u);
  EXPECT_EQ(chunk.blocks[0], a_blocks[0]);
  EXPECT_EQ(chunk.blocks[1], a_blocks[1]);
  EXPECT_NE(chunk.blocks[2], a_blocks[2]);
  EXPECT_EQ(Ints(steps[0].input.ids.begin() + 1, steps[0].input.ids.end()), Ints({77, 78, 79}));
  const KvBlockReport kv = core.kv_blocks();
  EXPECT_EQ(kv.prefix_hit_tokens, 32);
  EXPECT_EQ(kv.prefill_tokens, 43);
  EXPECT_EQ(kv.used, 4);  // two shared, one each of their own
}

TEST(SchedulerCore, APromptOfWholeBlocksPrefillsItsLastBlockAgain) {
  // All of a 32-token prompt is cached, but its last token's logits are needed: the second
  // block is written again, into a block of its own (a shared block is never written).
  SchedulerCore core(Paged(4, 256, 0));
  AddOk(core, Range(1, 32), Greedy(1));
  auto steps = core.Schedule(1);
  const Ints first = steps[0].input.seqs[0].blocks;
  core.OnResult(Answer(steps[0], 5));
  AddOk(core, Range(1, 32), Greedy(1));
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  const SeqChunk& chunk = steps[0].input.seqs.back();
  EXPECT_EQ(chunk.start_pos, 16);
  EXPECT_EQ(chunk.n_tokens, 16);
  EXPECT_EQ(chunk.blocks[0], first[0]);
  EXPECT_NE(chunk.blocks[1], first[1]);
}

TEST(SchedulerCore, AdmissionCountsTheBlocksPromisedToPromptsAdmittedBefore) {
  SchedulerCore core(Paged(4, 32, 4));  // 4 blocks; each prompt needs 2
  for (int i = 0; i < 3; ++i) AddOk(core, Range(100 * i, 20), Greedy(4));
  auto steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].input.seqs.size(), 2u);
  EXPECT_EQ(core.queued(), 1);
  EXPECT_EQ(core.kv_blocks().preempted, 0);
}

TEST(SchedulerCore, WhenBlocksRunOutTheNewestSequenceIsPreemptedAndPrefilledAgainLater) {
  SchedulerCore core(Paged(2, 32, 3));  // 3 blocks; a sequence may need 2
  auto a = AddOk(core, Range(100, 15), Greedy(6));
  auto b = AddOk(core, Range(200, 15), Greedy(6));
  auto steps = core.Schedule(1);
  ASSERT_EQ(steps[0].input.seqs.size(), 2u);
  const int32_t b_first_block = steps[0].input.seqs[1].blocks[0];
  core.OnResult(Answer(steps[0], 1));  // both at 16 tokens: their first block is full
  steps = core.Schedule(1);
  core.OnResult(Answer(steps[0], 2));  // 17 tokens: the next decode needs a second block
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  // a takes the last free block; b, the newest, gives its block and slot back and waits.
  ASSERT_EQ(steps[0].input.seqs.size(), 1u);
  EXPECT_EQ(steps[0].input.seqs[0].slot, 0);
  EXPECT_EQ(steps[0].input.release_slots, Ints({1}));
  EXPECT_EQ(core.kv_blocks().preempted, 1);
  EXPECT_EQ(core.kv_blocks().used, 2);
  EXPECT_EQ(core.queued(), 1);
  // a runs to its end; b waits for two free blocks.
  for (int i = 0; i < 3; ++i) {
    core.OnResult(Answer(steps[0], 3));
    steps = core.Schedule(1);
    ASSERT_EQ(steps.size(), 1u);
    ASSERT_EQ(steps[0].input.seqs.size(), 1u);
    EXPECT_EQ(steps[0].input.seqs[0].slot, 0);
  }
  core.OnResult(Answer(steps[0], 4));  // a's sixth token
  EXPECT_TRUE(a->Take(0).done);
  steps = core.Schedule(1);  // a leaves (b waits for its blocks until then)
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].input.seqs.empty());
  core.OnResult(Answer(steps[0], 0));
  // b comes back. Its ids are its prompt, then its two tokens; the first block of them (its
  // own, written before it was preempted) is still cached, so only the 17th id is prefilled.
  steps = core.Schedule(1);
  ASSERT_EQ(steps.size(), 1u);
  ASSERT_EQ(steps[0].input.seqs.size(), 1u);
  EXPECT_EQ(steps[0].input.seqs[0].start_pos, 16);
  EXPECT_EQ(steps[0].input.seqs[0].n_tokens, 1);
  EXPECT_EQ(steps[0].input.ids, Ints({2}));
  EXPECT_EQ(steps[0].input.seqs[0].blocks[0], b_first_block);
  EXPECT_TRUE(steps[0].input.seqs[0].sampling.has_value());
  EXPECT_EQ(core.kv_blocks().prefix_hit_tokens, 16);
  while (!steps.empty()) {
    core.OnResult(Answer(steps[0], 5));
    steps = core.Schedule(1);
  }
  auto ev = b->Take(0);
  EXPECT_TRUE(ev.done);
  EXPECT_TRUE(ev.error.ok()) << ev.error;
  EXPECT_EQ(Ids(ev), Ints({1, 2, 5, 5, 5, 5}));
  EXPECT_EQ(core.kv_blocks().used, 0);
}

TEST(SchedulerCore, BlocksAllComeBackAfterFinishedCancelledAndFailedSequences) {
  SchedulerCore core(Paged(4, 64, 0));
  auto done = AddOk(core, Range(1, 20), Greedy(2));
  auto cancelled = AddOk(core, Range(30, 33), Greedy(50));
  auto failed = AddOk(core, Range(80, 17), Greedy(50));
  auto steps = core.Schedule(2);
  ASSERT_EQ(steps.size(), 2u);
  core.OnResult(Answer(steps[0], 1));
  core.OnResult(Failed(steps[1], absl::InvalidArgumentError("refused")));
  cancelled->Cancel();
  for (int i = 0; i < 6 && core.has_work(); ++i) {
    for (const auto& step : core.Schedule(2)) core.OnResult(Answer(step, 2));
  }
  for (const auto& step : core.Schedule(2)) core.OnResult(Answer(step, 2));  // releases
  EXPECT_FALSE(core.has_work());
  EXPECT_TRUE(done->Take(0).done);
  EXPECT_FALSE(failed->Take(0).error.ok());
  const KvBlockReport kv = core.kv_blocks();
  EXPECT_EQ(kv.used, 0);
  EXPECT_EQ(kv.total, 4 * 4);
  EXPECT_GT(kv.cached, 0);  // the full blocks stay for reuse
}

// ---- The scheduler over a pipeline of real workers

// The workers' cores chained in process, as the gRPC pipeline chains them over the network.
class LocalPipeline : public SyncPipeline {
 public:
  LocalPipeline(const std::string& dir, int64_t stages, const SliceLimits& limits)
      : limits_(limits) {
    auto ckpt = Checkpoint::Open(dir);
    EXPECT_TRUE(ckpt.ok());
    ckpt_ = std::move(*ckpt);
    specs_ = EvenSlices(ckpt_->config().num_layers, stages);
    for (size_t i = 0; i < specs_.size(); ++i) {
      cores_.emplace_back();
      Restart(i);
    }
  }
  // Stage i's worker as a new process would be: its KV cache empty.
  void Restart(size_t i) {
    auto slice = Slice::Load(*ckpt_, specs_[i], limits_, MakeCpuBackend());
    EXPECT_TRUE(slice.ok());
    cores_[i] = std::make_unique<WorkerCore>(std::move(*slice), WorkerIdentity{});
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
        sampled->push_back({t.slot(),
                            t.id(),
                            t.logprob(),
                            {t.top_ids().begin(), t.top_ids().end()},
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
  const SliceLimits limits_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::vector<SliceSpec> specs_;
  std::vector<std::unique_ptr<WorkerCore>> cores_;
};

// Loses its middle stage at the given steps: the step fails as a dead worker's would, the
// worker comes back with an empty KV cache, and the pipeline is not ready for a while.
class LosingPipeline : public SyncPipeline {
 public:
  LosingPipeline(LocalPipeline* inner, std::vector<int64_t> lose_at)
      : inner_(inner), lose_at_(std::move(lose_at)) {}
  bool Ready() const override {
    const bool ready = std::chrono::steady_clock::now() >= unready_until_.load();
    if (!ready) ++reads_while_unready;
    return ready;
  }
  int64_t losses = 0;
  mutable std::atomic<int64_t> reads_while_unready{0};

 protected:
  absl::Status RunStep(const StepInput& step, std::vector<SampledToken>* sampled) override {
    if (!Ready()) return absl::UnavailableError("worker 1 is unreachable");
    if (std::count(lose_at_.begin(), lose_at_.end(), ++steps_)) {
      ++losses;
      inner_->Restart(1);
      unready_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      return absl::UnavailableError("worker 1 was lost mid-step");
    }
    return inner_->RunStep(step, sampled);
  }

 private:
  LocalPipeline* inner_;
  const std::vector<int64_t> lose_at_;
  int64_t steps_ = 0;
  std::atomic<std::chrono::steady_clock::time_point> unready_until_{};
};

// Keeps steps in flight and runs them in order through `inner`: `depth` of them, as a pipeline
// of that many stages does, checking that no sequence is in two at once; or, with decode ahead,
// as a one-stage gRPC pipeline does, one more, a sequence in two only with kSampledBefore in the
// later one (the one-stage LocalPipeline's worker fills it in).
class QueuedPipeline : public Pipeline {
 public:
  QueuedPipeline(LocalPipeline* inner, int depth, bool ahead)
      : inner_(inner), depth_(depth), ahead_(ahead) {}
  int depth() const override { return depth_; }
  bool decode_ahead() const override { return ahead_; }
  void Submit(uint64_t tag, StepInput step) override {
    for (const auto& pending : pending_) {
      for (const auto& a : pending.second.seqs) {
        size_t offset = 0;
        for (const auto& b : step.seqs) {
          const bool later_ahead = ahead_ && b.n_tokens == 1 && step.ids[offset] == kSampledBefore;
          if (!later_ahead) EXPECT_NE(a.slot, b.slot) << "a sequence in two micro-batches";
          offset += size_t(b.n_tokens);
        }
      }
    }
    for (int32_t id : step.ids) ahead_ids += id == kSampledBefore;
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
  std::atomic<int64_t> ahead_ids{0};

 private:
  LocalPipeline* inner_;
  const int depth_;
  const bool ahead_;
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

// 16 requests of different lengths and parameters (greedy, and seeded sampling with every
// parameter), with a small step budget so prefills are chunked and mixed with decodes.
std::vector<std::pair<std::vector<int32_t>, GenerationParams>> MixedWork() {
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
  return work;
}

TEST(Scheduler, ConcurrentRequestsGetWhatTheyGetAlone) {
  const auto work = MixedWork();
  std::vector<std::vector<int32_t>> alone;
  {
    LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 2, {16, 256, 32});
    Scheduler scheduler(&pipeline, {16, 256, 32, 32});
    for (auto& [prompt, params] : work)
      alone.push_back(Collect(**scheduler.Submit(prompt, params)));
  }
  LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 2, {16, 256, 32});
  Scheduler scheduler(&pipeline, {16, 256, 32, 32});
  std::vector<std::shared_ptr<Request>> requests;
  for (auto& [prompt, params] : work) requests.push_back(*scheduler.Submit(prompt, params));
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(Collect(*requests[i]), alone[i]) << "request " << i;
  }
  EXPECT_GT(pipeline.max_seqs_in_step, 4) << "requests were actually batched";

  // The same with three micro-batches in flight, and through one stage that takes decode steps
  // ahead.
  for (const bool ahead : {false, true}) {
    LocalPipeline inner(FixtureDir("qwen3-small-sharded"), ahead ? 1 : 2, {16, 256, 32});
    QueuedPipeline queued(&inner, ahead ? 1 : 3, ahead);
    Scheduler pipelined(&queued, {16, 256, 32, 32});
    requests.clear();
    for (auto& [prompt, params] : work) requests.push_back(*pipelined.Submit(prompt, params));
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(Collect(*requests[i]), alone[i])
          << "request " << i << (ahead ? ", decode ahead" : ", pipelined");
    }
    EXPECT_EQ(queued.max_in_flight, ahead ? 2 : 3);
    if (ahead) EXPECT_GT(queued.ahead_ids, 16);
  }
}

TEST(Scheduler, RequestsPausedByALostWorkerResumeWithTheTokensOfAnUninterruptedRun) {
  auto work = MixedWork();
  for (auto& [prompt, params] : work) params.max_tokens += 12;  // still running at the losses
  std::vector<std::vector<int32_t>> uninterrupted;
  {
    LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 3, {16, 256, 32});
    Scheduler scheduler(&pipeline, {16, 256, 32, 32});
    std::vector<std::shared_ptr<Request>> requests;
    for (auto& [prompt, params] : work) requests.push_back(*scheduler.Submit(prompt, params));
    for (auto& r : requests) uninterrupted.push_back(Collect(*r));
  }
  // The middle worker is lost twice: mid-prefill and mid-decode.
  LocalPipeline inner(FixtureDir("qwen3-small-sharded"), 3, {16, 256, 32});
  LosingPipeline losing(&inner, {4, 20});
  Scheduler scheduler(&losing, {16, 256, 32, 32});
  std::vector<std::shared_ptr<Request>> requests;
  for (auto& [prompt, params] : work) requests.push_back(*scheduler.Submit(prompt, params));
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(Collect(*requests[i]), uninterrupted[i]) << "request " << i;
  }
  EXPECT_EQ(losing.losses, 2);
  EXPECT_GE(scheduler.resumed(), 16);
  EXPECT_EQ(scheduler.paused(), 0);
}

// With nothing in flight in an outage, the scheduler looks for its end every kOutagePoll (10 ms),
// not in a loop that keeps a core busy (200 ms of outage: about 20 looks, not thousands).
TEST(Scheduler, AnOutageIsWaitedOutWithoutSpinning) {
  LocalPipeline inner(FixtureDir("qwen3-tiny"), 2, {4, 64, 16});
  LosingPipeline losing(&inner, {3});
  Scheduler scheduler(&losing, {4, 64, 16, 16});
  auto request = scheduler.Submit({1, 2, 3}, Greedy(8));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(Collect(**request).size(), 8u);
  EXPECT_EQ(losing.losses, 1);
  EXPECT_GE(losing.reads_while_unready, 2);
  EXPECT_LE(losing.reads_while_unready, 60);
}

TEST(Scheduler, PreemptionUnderATinyBlockPoolChangesNoToken) {
  auto work = MixedWork();
  for (auto& [prompt, params] : work) params.max_tokens += 20;
  std::vector<std::vector<int32_t>> ample;
  {
    LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 2, {16, 256, 32});
    Scheduler scheduler(&pipeline, {16, 256, 32, 32});
    for (auto& [prompt, params] : work)
      ample.push_back(Collect(**scheduler.Submit(prompt, params)));
  }
  // 20 blocks of 16 tokens for 16 sequences of up to 100 tokens, three micro-batches in flight.
  const SliceLimits tiny{16, 256, 32, 20, 16};
  // Also through one stage that takes decode steps ahead.
  for (const bool ahead : {false, true}) {
    LocalPipeline inner(FixtureDir("qwen3-small-sharded"), ahead ? 1 : 2, tiny);
    QueuedPipeline queued(&inner, ahead ? 1 : 3, ahead);
    Scheduler scheduler(&queued, {16, 256, 32, 32, std::chrono::milliseconds(60000), 20, 16});
    std::vector<std::shared_ptr<Request>> requests;
    for (auto& [prompt, params] : work) requests.push_back(*scheduler.Submit(prompt, params));
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(Collect(*requests[i]), ample[i]) << "request " << i << (ahead ? ", ahead" : "");
    }
    EXPECT_GT(scheduler.kv_blocks().preempted, 0);
    // The last ones leave at the scheduler's next step boundary.
    for (int i = 0; i < 200 && scheduler.kv_blocks().used > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(scheduler.kv_blocks().used, 0);
  }
}

// Two prompts of 203 and 205 tokens whose first 200 are the same.
std::pair<Ints, Ints> PromptsWithASharedPrefix() {
  Ints a, b;
  for (int i = 0; i < 200; ++i) a.push_back((i * 37 + 11) % 4096);
  b = a;
  a.insert(a.end(), {5, 6, 7});
  b.insert(b.end(), {900, 901, 902, 903, 904});
  return {a, b};
}

TEST(Scheduler, ASharedPrefixIsPrefilledOnceAndChangesNoToken) {
  const auto [a, b] = PromptsWithASharedPrefix();
  GenerationParams seeded = Greedy(12);
  seeded.sampling.temperature = 0.8f;
  seeded.sampling.seed = 42;
  Ints b_alone;
  {
    LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 3, {4, 256, 64});
    Scheduler scheduler(&pipeline, {4, 256, 64, 8});
    b_alone = Collect(**scheduler.Submit(b, seeded));
    EXPECT_EQ(scheduler.kv_blocks().prefix_hit_tokens, 0);
  }
  LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 3, {4, 256, 64});
  Scheduler scheduler(&pipeline, {4, 256, 64, 8});
  const Ints a_out = Collect(**scheduler.Submit(a, Greedy(12)));
  const KvBlockReport after_a = scheduler.kv_blocks();
  EXPECT_EQ(after_a.prefix_hit_tokens, 0);
  EXPECT_EQ(after_a.prefill_tokens, 203);
  EXPECT_EQ(Collect(**scheduler.Submit(b, seeded)), b_alone);
  const KvBlockReport after_b = scheduler.kv_blocks();
  EXPECT_EQ(after_b.prefix_hit_tokens, 192);  // 12 whole blocks of the 200 shared tokens
  EXPECT_EQ(after_b.prefill_tokens - after_a.prefill_tokens, 205 - 192);
  // a again: all its whole blocks are cached (its generated tokens' too).
  EXPECT_EQ(Collect(**scheduler.Submit(a, Greedy(12))), a_out);
  EXPECT_EQ(scheduler.kv_blocks().prefix_hit_tokens - after_b.prefix_hit_tokens, 192);
}

// With a repetition penalty too: the last stage is never sent the cached prefix's ids, so the
// first chunk carries them for the penalty. The penalized tokens differ from the unpenalized
// ones (the prefix's ids matter) and equal those of a pipeline where nothing was cached.
TEST(Scheduler, ASharedPrefixKeepsTheRepetitionPenaltyOverTheWholePrompt) {
  const auto [a, b] = PromptsWithASharedPrefix();
  GenerationParams penalized = Greedy(16);
  penalized.sampling.repetition_penalty = 5.0f;
  Ints b_alone, b_unpenalized;
  {
    LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 3, {4, 256, 64});
    Scheduler scheduler(&pipeline, {4, 256, 64, 8});
    b_alone = Collect(**scheduler.Submit(b, penalized));
    EXPECT_EQ(scheduler.kv_blocks().prefix_hit_tokens, 0);
    b_unpenalized = Collect(**scheduler.Submit(b, Greedy(16)));
  }
  EXPECT_NE(b_alone, b_unpenalized);
  LocalPipeline pipeline(FixtureDir("qwen3-small-sharded"), 3, {4, 256, 64});
  Scheduler scheduler(&pipeline, {4, 256, 64, 8});
  Collect(**scheduler.Submit(a, Greedy(4)));
  EXPECT_EQ(Collect(**scheduler.Submit(b, penalized)), b_alone);
  EXPECT_EQ(scheduler.kv_blocks().prefix_hit_tokens, 192);
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
  while ((*long_one)->Take(10).tokens.empty()) {
  }
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
  while ((*running)->Take(10).tokens.empty()) {
  }
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
