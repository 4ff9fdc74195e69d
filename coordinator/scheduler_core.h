// Continuous batching as a plain object, with no thread and no waiting (vLLM v1's
// schedule() / update_from_output()): Schedule() is the step boundary, where waiting requests
// join while KV-cache slots are free, finished and cancelled ones leave, and the micro-batches
// to submit next are built; OnResult() applies what a micro-batch sampled, finishing and
// failing requests. The running sequences are spread over up to one micro-batch per pipeline
// stage; a micro-batch carries one decode token for each of its sequences plus prefill chunks
// of new prompts within the step's token budget, and a sequence is never in two micro-batches
// at once. Something else (scheduler.h) drives it and talks to the pipeline; tests drive it by
// hand with made-up results and times.
//
// Resume: when a stage is lost (a step fails with UNAVAILABLE or FAILED_PRECONDITION, or the
// pipeline is not ready), every running sequence is paused, not failed: its KV cache may be
// gone. Once the pipeline is ready again and nothing is in flight, each is prefilled again from
// its ids (prompt + generated, chunked like any prefill) and goes on; sampling is seeded by
// (seed, position), so it continues with the tokens it would have had. A sequence that makes no
// progress for resume_timeout after a loss fails with the loss's error, as do requests that
// waited through an outage that long; resume_timeout 0 fails them at once (no resuming).
//
// KV-cache blocks (kv_block_pool.h): a sequence holds the blocks its positions fill, taken as
// its chunks are scheduled. A request is admitted while a slot is free and the blocks its
// prefill needs are, beyond those promised to the prompts admitted before it (a prompt that
// starts with registered blocks shares them and prefills only the rest; with a repetition
// penalty its first chunk carries the shared ids, which the last stage counts as seen). When a
// sequence needs a block
// and none is free, the newest running sequence holding blocks and not in flight is preempted:
// its blocks and slot are freed and it waits at the head of the queue, to be prefilled again
// from its ids (as a resume) when it is admitted again; its stream sees only the delay (and,
// on GPUs without batch_invariant, the prefill kernels' rounding of its keys instead of the
// decode kernels', as after a resume). A lost stage forgets every registered block.
//
// Decode ahead (SchedulerLimits::decode_ahead, for a pipeline of one stage, which embeds and
// samples): a decoding sequence whose step is in flight goes into the next micro-batch too, its
// token kSampledBefore (common/protocol.h), which the worker fills in with what it sampled for
// it last. So the next step is on its way while the answer to the last one travels back, and
// the worker starts it as soon as it has answered. At most one step ahead; none while the step
// in flight may end the sequence by length. A sequence that the step in flight ends (a stop id,
// a cancel) gets one token more from the step ahead, which is dropped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/kv_pages.h"
#include "coordinator/kv_block_pool.h"
#include "coordinator/pipeline.h"
#include "coordinator/request.h"

namespace lp {

struct SchedulerLimits {
  int64_t max_batch = 16;          // sequences at once (slots)
  int64_t max_context = 4096;      // prompt + completion tokens per sequence
  int64_t max_step_tokens = 2048;  // tokens per step, all sequences together
  int64_t queue_capacity = 256;    // waiting requests
  // How long a sequence paused by a lost stage may wait to resume (see above); 0: no resuming.
  std::chrono::milliseconds resume_timeout{60000};
  // The pipeline's KV-cache blocks (the plan's; 0: max_batch sequences of max_context) of
  // kv_block_tokens positions. At least one sequence of max_context must fit.
  int64_t kv_blocks = 0;
  int64_t kv_block_tokens = kDefaultKvBlockTokens;
  bool decode_ahead = false;  // see "Decode ahead" above (Scheduler: the pipeline's)
};

using SchedulerClock = std::chrono::steady_clock;

// One resume, from the moment the pipeline answered again until every sequence it started
// again had its next token (those that ended meanwhile not waited for).
struct ResumeReport {
  int64_t requests = 0;
  int64_t tokens = 0;  // ids prefilled again, all of them together
  std::chrono::milliseconds took{0};
};

// Where a sequence is in its life. The last three are ends: the sequence leaves (and its slot
// is freed) at the first step boundary where no micro-batch of it is in flight.
enum class SeqState {
  kWaiting,     // queued (or preempted), no slot
  kPrefilling,  // has a slot; chunks of its ids left to send, or the last one's token not back
  kDecoding,    // its last token goes in the next micro-batch that takes it
  kPaused,      // a stage was lost: prefilled again from its ids once the pipeline is ready
  kFinished,    // stop id or length reached
  kFailed,      // a step of it failed, or a stage (and its KV cache) was lost
  kCancelled,   // the client went away
};

// A micro-batch to submit, with the tag its result must come back with.
struct ScheduledStep {
  uint64_t tag = 0;
  StepInput input;
};

class SchedulerCore {
 public:
  explicit SchedulerCore(const SchedulerLimits& limits);

  // Any thread. Queues a request; RESOURCE_EXHAUSTED when the queue is full (requests
  // cancelled while waiting and those that free KV slots take at the next boundary do not
  // count). The prompt must already be validated against the limits.
  absl::StatusOr<std::shared_ptr<Request>> Add(std::vector<int32_t> prompt,
                                               GenerationParams params);
  const SchedulerLimits& limits() const { return limits_; }
  int64_t queued() const;                       // waiting, not cancelled
  int64_t active() const;                       // KV-cache slots taken
  int64_t paused() const { return paused_; }    // sequences waiting to resume
  int64_t resumed() const { return resumed_; }  // sequences resumed since start
  // Whether new requests may queue although the pipeline is not ready: it has been ready,
  // resuming is on, and no outage has outlasted resume_timeout. True before this core has seen
  // an outage begin, since the pipeline may report one first.
  bool holding() const { return holding_; }
  // Any thread.
  KvBlockReport kv_blocks() const;

  // The rest: only the driving thread.
  // The last resume once it is complete, once (none before, or if it was cut short by
  // another outage).
  std::optional<ResumeReport> TakeResumeReport();
  // The step boundary: admits, retires, and builds micro-batches until `depth` are in flight
  // or nothing is left to send. The caller submits every one, in order. `ready`: whether every
  // stage answers (nothing is sent otherwise, and the running sequences are paused), read at
  // `now`.
  std::vector<ScheduledStep> Schedule(int depth, bool ready = true,
                                      SchedulerClock::time_point now = SchedulerClock::now());
  // Applies a submitted micro-batch's result. A failed one fails its requests; a lost stage
  // (UNAVAILABLE or FAILED_PRECONDITION: its KV cache may be gone) pauses every running
  // request, or fails them all when resume_timeout is 0.
  void OnResult(const StepResult& result, SchedulerClock::time_point now = SchedulerClock::now());
  // Takes back a micro-batch whose result is not applied (at shutdown).
  void Discard(const StepResult& result);
  // Fails every running and waiting request (at shutdown).
  void FailAll(const absl::Status& status);

  int in_flight() const { return int(flights_.size()); }
  // Nothing in flight and no slot release to send: the driver may wait for work.
  bool idle() const { return flights_.empty() && to_release_.empty(); }
  // Requests waiting or running (cancelled ones not yet dropped included).
  bool has_work() const;
  // The state of the sequence holding `slot`, none if the slot is free (for tests).
  std::optional<SeqState> state_of_slot(int32_t slot) const;

 private:
  struct Seq {
    std::shared_ptr<Request> request;
    // When it was queued: an outage seen in a readiness read taken before then does not fail it
    // (it was admitted on a newer read).
    SchedulerClock::time_point queued_at = SchedulerClock::now();
    SeqState state = SeqState::kWaiting;
    int32_t slot = 0;
    std::vector<int32_t> blocks;  // KV-cache blocks, in position order
    int64_t written = 0;          // positions whose keys and values a step has stored
    int64_t registered = 0;       // full blocks registered (or, once one fails, no more tried)
    KvBlockPool::Chain chain;     // after the last registered block
    int64_t cached = 0;           // of its ids found in the prefix cache at admission
    int64_t prefilled = 0;        // of its ids (prompt, then generated) sent to the KV cache
    int64_t to_prefill = 0;       // ids its prefill covers: the prompt; prompt + generated resumed
    std::vector<int32_t> generated;
    bool in_flight = false;  // in a micro-batch not yet back
    bool ahead = false;      // and in a second one (decode ahead), sent after it
    // Failed with a step a worker refused while its step ahead was in flight: that one cannot
    // run (nothing was sampled to go on from), and its failure is no lost stage.
    bool refused_ahead_of = false;
    // Since when it has made no progress after a lost stage (reset by its next token).
    std::optional<SchedulerClock::time_point> lost_at;
    // Started again after a lost stage, its next token not back yet.
    bool resuming() const { return lost_at && state != SeqState::kPaused && !Ended(state); }
  };
  static bool Ended(SeqState s) {
    return s == SeqState::kFinished || s == SeqState::kFailed || s == SeqState::kCancelled;
  }
  // Removes requests cancelled while they waited (their clients are gone). Holds mu_.
  void DropCancelledLocked();
  void Admit();
  void Retire();
  // Id `i` of a sequence's ids: its prompt, then what it generated.
  static int32_t IdAt(const Seq& s, int64_t i);
  // Gives `s` the blocks for positions [0, end), preempting sequences while none are free
  // (unless !preempt); false when it has to wait (it may have been preempted itself).
  bool EnsureBlocks(Seq& s, int64_t end, StepInput* step, bool preempt = true);
  // Frees a sequence's blocks and slot (in `step`'s releases) and marks it to wait again.
  void Preempt(Seq& s, StepInput* step);
  // Preempted sequences back to the head of the queue, oldest first.
  void Requeue();
  // Registers the full blocks of `s` that its steps have written.
  void RegisterBlocks(Seq& s);
  void ReleaseBlocks(Seq& s);
  void PublishBlocks();
  // Whether a decode step of `s` may go out before the answer to the one in flight.
  bool MayGoAhead(const Seq& s) const;
  // Builds a micro-batch of at most `micro_batch_seqs` sequences not in flight (or going ahead),
  // carrying the pending slot releases; false when there is nothing to send.
  bool BuildStep(int64_t micro_batch_seqs, StepInput* step);
  void Apply(const StepResult& result, SchedulerClock::time_point now);
  void Fail(Seq& seq, const absl::Status& status);
  // A lost stage: pauses every running sequence (or fails them all without resuming).
  void Lose(const absl::Status& status, SchedulerClock::time_point now);
  // Outages and paused sequences: fails what waited past resume_timeout, tracks whether new
  // requests may queue, and starts the paused sequences again once `ready` and nothing is in
  // flight. False while something stays paused (nothing else is sent meanwhile). `now`: when
  // `ready` was read.
  bool Recover(bool ready, SchedulerClock::time_point now);

  const SchedulerLimits limits_;
  mutable std::mutex mu_;  // guards queue_ and free_slots_ (Add and the getters come from others)
  std::deque<Seq> queue_;  // kWaiting
  std::vector<int32_t> free_slots_;
  // Owned by the driving thread.
  std::vector<Seq> running_;
  std::vector<int32_t> to_release_;  // freed slots the workers have not been told of yet
  struct Flight {
    int32_t slot;
    int64_t start, end;  // positions its chunk fills
  };
  std::map<uint64_t, std::vector<Flight>> flights_;  // tag -> the micro-batch's sequences
  KvBlockPool pool_;
  uint64_t next_tag_ = 0;
  bool was_ready_ = false;  // the pipeline has been ready (before that, no outage is held)
  std::optional<SchedulerClock::time_point> outage_since_;
  absl::Status loss_;  // the last lost stage's error: what expired requests fail with
  struct Resuming {
    ResumeReport report;
    SchedulerClock::time_point began;
  };
  std::optional<Resuming> resuming_;  // the resume under way
  std::optional<ResumeReport> resumed_report_;
  std::atomic<bool> holding_{false};
  std::atomic<int64_t> paused_{0};
  std::atomic<int64_t> resumed_{0};
  // What kv_blocks() reports (the pool itself is the driving thread's).
  std::atomic<int64_t> kv_used_{0}, kv_cached_{0}, prefix_hit_tokens_{0}, prefill_tokens_{0},
      preempted_{0};
};

}  // namespace lp
