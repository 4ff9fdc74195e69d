// Continuous batching without a thread (see scheduler_core.h).
#include "coordinator/scheduler_core.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/protocol.h"

namespace lp {
namespace {

absl::Status Unreachable() {
  return absl::UnavailableError("generation failed: a worker is unreachable");
}

}  // namespace

SchedulerCore::SchedulerCore(const SchedulerLimits& limits)
    : limits_(limits),
      pool_(limits.kv_blocks > 0
                ? limits.kv_blocks
                : limits.max_batch * KvBlocksFor(limits.max_context, limits.kv_block_tokens),
            limits.kv_block_tokens) {
  for (int32_t s = int32_t(limits.max_batch) - 1; s >= 0; --s) free_slots_.push_back(s);
}

absl::StatusOr<std::shared_ptr<Request>> SchedulerCore::Add(std::vector<int32_t> prompt,
                                                            GenerationParams params) {
  auto request = std::make_shared<Request>(std::move(prompt), std::move(params));
  std::lock_guard<std::mutex> lock(mu_);
  DropCancelledLocked();
  // Requests that free KV slots will take at the next step boundary are not waiting: only
  // the rest count against the queue's capacity.
  const int64_t waiting = int64_t(queue_.size()) - int64_t(free_slots_.size());
  if (waiting >= limits_.queue_capacity) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request queue is full (", limits_.queue_capacity, " waiting); retry later"));
  }
  queue_.push_back({request});
  return request;
}

int64_t SchedulerCore::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int64_t(std::count_if(queue_.begin(), queue_.end(),
                               [](const Seq& s) { return !s.request->cancelled(); }));
}

int64_t SchedulerCore::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return limits_.max_batch - int64_t(free_slots_.size());
}

KvBlockReport SchedulerCore::kv_blocks() const {
  return {pool_.total(), kv_used_, kv_cached_, prefix_hit_tokens_, prefill_tokens_, preempted_};
}

void SchedulerCore::PublishBlocks() {
  kv_used_ = pool_.used();
  kv_cached_ = pool_.cached();
}

int32_t SchedulerCore::IdAt(const Seq& s, int64_t i) {
  const auto& prompt = s.request->prompt();
  return i < int64_t(prompt.size()) ? prompt[size_t(i)] : s.generated[size_t(i) - prompt.size()];
}

bool SchedulerCore::has_work() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !queue_.empty() || !running_.empty();
}

std::optional<SeqState> SchedulerCore::state_of_slot(int32_t slot) const {
  for (const Seq& s : running_) {
    if (s.slot == slot) return s.state;
  }
  return std::nullopt;
}

void SchedulerCore::DropCancelledLocked() {
  std::erase_if(queue_, [](const Seq& s) { return s.request->cancelled(); });
}

void SchedulerCore::Admit() {
  const int64_t bt = pool_.block_tokens();
  // Blocks promised to prompts admitted but not yet prefilled: they take them as their chunks
  // are scheduled.
  int64_t promised = 0;
  for (const Seq& s : running_) {
    if (s.state == SeqState::kPrefilling) {
      promised += std::max<int64_t>(0, KvBlocksFor(s.to_prefill, bt) - int64_t(s.blocks.size()));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  while (!queue_.empty() && !free_slots_.empty()) {
    Seq& seq = queue_.front();
    if (seq.request->cancelled()) {
      queue_.pop_front();
      continue;
    }
    // Its ids are the prompt, then (preempted) what it generated. It shares the registered
    // blocks they start with, up to the one that holds its last id (which its prefill writes).
    const int64_t n = int64_t(seq.request->prompt().size() + seq.generated.size());
    // Short of blocks even if every block it may share were cached: it waits, unhashed.
    if (pool_.available() - promised < KvBlocksFor(n, bt) - (n - 1) / bt) break;
    std::span<const int32_t> ids = seq.request->prompt();
    std::vector<int32_t> preempted;  // a preempted sequence's ids, joined
    if (!seq.generated.empty()) {
      preempted.assign(ids.begin(), ids.end());
      preempted.insert(preempted.end(), seq.generated.begin(), seq.generated.end());
      ids = preempted;
    }
    KvBlockPool::Chain chain;
    std::vector<int32_t> shared = pool_.Match(ids, (n - 1) / bt, &chain);
    const int64_t need = KvBlocksFor(n, bt) - int64_t(shared.size());
    if (pool_.available() - promised < need) {
      pool_.Release(shared);
      break;  // first come, first served: it waits for blocks
    }
    promised += need;
    Seq s = std::move(seq);
    queue_.pop_front();
    s.state = SeqState::kPrefilling;
    s.to_prefill = n;
    s.cached = s.prefilled = s.written = int64_t(shared.size()) * bt;
    s.registered = int64_t(shared.size());
    s.chain = chain;
    s.blocks = std::move(shared);
    prefix_hit_tokens_ += s.prefilled;
    s.slot = free_slots_.back();
    free_slots_.pop_back();
    s.generated.reserve(size_t(s.request->params().max_tokens));
    running_.push_back(std::move(s));
  }
}

// Drops ended and cancelled sequences that have no micro-batch in flight. Their slots and
// blocks are free at once: the next step submitted tells the workers, before anything that
// reuses the slots.
void SchedulerCore::Retire() {
  const size_t before = to_release_.size();
  for (auto it = running_.begin(); it != running_.end();) {
    if (!Ended(it->state) && it->request->cancelled()) it->state = SeqState::kCancelled;
    if (!it->in_flight && Ended(it->state)) {
      to_release_.push_back(it->slot);
      ReleaseBlocks(*it);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  free_slots_.insert(free_slots_.end(), to_release_.begin() + std::ptrdiff_t(before),
                     to_release_.end());
}

void SchedulerCore::ReleaseBlocks(Seq& s) {
  pool_.Release(s.blocks);
  s.blocks.clear();
  s.cached = s.written = 0;
  s.registered = 0;
  s.chain = {};
}

bool SchedulerCore::EnsureBlocks(Seq& s, int64_t end, StepInput* step, bool preempt) {
  const int64_t need = KvBlocksFor(end, pool_.block_tokens());
  while (int64_t(s.blocks.size()) < need) {
    const int32_t b = pool_.Allocate();
    if (b >= 0) {
      s.blocks.push_back(b);
      continue;
    }
    if (!preempt) return false;
    // The newest sequence that can give blocks back now (not in flight, holding some); `s` at
    // the latest.
    Seq* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend() && victim == nullptr; ++it) {
      const bool running = it->state == SeqState::kPrefilling || it->state == SeqState::kDecoding;
      if (running && !it->in_flight && (!it->blocks.empty() || &*it == &s)) victim = &*it;
    }
    if (victim == nullptr) return false;
    Preempt(*victim, step);
    if (victim == &s) return false;
  }
  return true;
}

void SchedulerCore::Preempt(Seq& s, StepInput* step) {
  ReleaseBlocks(s);
  step->release_slots.push_back(s.slot);
  s.state = SeqState::kWaiting;
  s.prefilled = 0;
  ++preempted_;
}

void SchedulerCore::Requeue() {
  std::vector<Seq> back;
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->state == SeqState::kWaiting) {
      back.push_back(std::move(*it));
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = back.rbegin(); it != back.rend(); ++it) {
    free_slots_.push_back(it->slot);
    queue_.push_front(std::move(*it));
  }
}

void SchedulerCore::RegisterBlocks(Seq& s) {
  const int64_t bt = pool_.block_tokens();
  std::vector<int32_t> tokens(static_cast<size_t>(bt));
  while (s.registered < s.written / bt && s.registered < int64_t(s.blocks.size())) {
    for (int64_t i = 0; i < bt; ++i) tokens[size_t(i)] = IdAt(s, s.registered * bt + i);
    if (!pool_.Register(s.blocks[size_t(s.registered)], tokens, &s.chain)) {
      s.registered = std::numeric_limits<int64_t>::max();
      return;
    }
    ++s.registered;
  }
}

bool SchedulerCore::MayGoAhead(const Seq& s) const {
  if (!limits_.decode_ahead || s.ahead || s.state != SeqState::kDecoding ||
      s.request->cancelled()) {
    return false;
  }
  // The step in flight brings token generated.size() + 1: then none may be left to sample.
  const int64_t generated = int64_t(s.generated.size()) + 1;
  return generated < s.request->params().max_tokens &&
         int64_t(s.request->prompt().size()) + generated < limits_.max_context;
}

bool SchedulerCore::BuildStep(int64_t micro_batch_seqs, StepInput* step) {
  step->seqs.clear();
  step->ids.clear();
  step->request_ids.clear();
  // Releases travel in the step stream ahead of any step that reuses their slots.
  step->release_slots.swap(to_release_);
  to_release_.clear();
  int64_t budget = limits_.max_step_tokens;
  // Decode tokens first: one each, latency-sensitive; prefill chunks take what is left.
  for (Seq& s : running_) {
    if ((s.in_flight && !MayGoAhead(s)) || s.state != SeqState::kDecoding || budget == 0 ||
        int64_t(step->seqs.size()) == micro_batch_seqs) {
      continue;
    }
    // Ahead, the position after the token that the step in flight samples.
    const bool ahead = s.in_flight;
    const int64_t pos = int64_t(s.request->prompt().size() + s.generated.size()) - (ahead ? 0 : 1);
    // Going ahead takes only free blocks: it is not worth another sequence's place.
    if (!EnsureBlocks(s, pos + 1, step, !ahead)) continue;
    step->seqs.push_back({s.slot, int32_t(pos), 1, s.request->params().sampling, s.blocks});
    step->request_ids.push_back(s.request->params().request_id);
    step->ids.push_back(ahead ? kSampledBefore : s.generated.back());
    (ahead ? s.ahead : s.in_flight) = true;
    --budget;
  }
  for (Seq& s : running_) {
    const int64_t left = s.to_prefill - s.prefilled;
    if (s.in_flight || s.state != SeqState::kPrefilling || left <= 0 || budget == 0 ||
        int64_t(step->seqs.size()) == micro_batch_seqs) {
      continue;
    }
    const int64_t n = std::min(left, budget);
    if (!EnsureBlocks(s, s.prefilled + n, step)) continue;
    const bool completes = n == left;
    step->seqs.push_back({s.slot, int32_t(s.prefilled), int32_t(n),
                          completes ? std::optional(s.request->params().sampling) : std::nullopt,
                          s.blocks});
    // The last stage never gets a cached prefix's ids; its repetition penalty counts them.
    if (s.prefilled == s.cached && s.cached > 0 &&
        PenaltyIsOn(s.request->params().sampling.repetition_penalty)) {
      for (int64_t i = 0; i < s.cached; ++i) step->seqs.back().prefix_ids.push_back(IdAt(s, i));
    }
    step->request_ids.push_back(s.request->params().request_id);
    for (int64_t i = s.prefilled; i < s.prefilled + n; ++i) step->ids.push_back(IdAt(s, i));
    s.prefilled += n;
    prefill_tokens_ += n;
    s.in_flight = true;
    budget -= n;
  }
  return !step->seqs.empty() || !step->release_slots.empty();
}

std::vector<ScheduledStep> SchedulerCore::Schedule(int depth, bool ready,
                                                   SchedulerClock::time_point now) {
  const bool go = Recover(ready, now);
  if (go) Admit();
  Retire();
  if (!go) {
    PublishBlocks();
    return {};
  }
  // Spread the running sequences over one micro-batch per stage; ahead, one micro-batch more.
  depth = std::max(1, depth);
  const int64_t per_batch = std::max<int64_t>(1, (int64_t(running_.size()) + depth - 1) / depth);
  const int most = depth + (limits_.decode_ahead ? 1 : 0);
  std::vector<ScheduledStep> steps;
  ScheduledStep step;
  while (in_flight() < most && BuildStep(per_batch, &step.input)) {
    step.tag = next_tag_++;
    std::vector<Flight>& flight = flights_[step.tag];
    for (const auto& s : step.input.seqs) {
      flight.push_back({s.slot, s.start_pos, s.start_pos + s.n_tokens});
    }
    steps.push_back(std::move(step));
    step = {};
  }
  Requeue();
  PublishBlocks();
  return steps;
}

void SchedulerCore::Apply(const StepResult& result, SchedulerClock::time_point now) {
  for (const SampledToken& t : result.sampled) {
    auto it = std::find_if(running_.begin(), running_.end(),
                           [&](const Seq& s) { return s.slot == t.slot; });
    // Its request has failed or gone, or it is paused (its resume samples this token again).
    if (it == running_.end() || Ended(it->state) || it->state == SeqState::kPaused) continue;
    Seq& s = *it;
    s.generated.push_back(t.id);
    s.lost_at.reset();
    s.request->Push(t);
    if (s.prefilled == s.to_prefill) s.state = SeqState::kDecoding;
    const auto& params = s.request->params();
    const int64_t total = int64_t(s.request->prompt().size() + s.generated.size());
    if (params.stop_ids.count(t.id)) {
      s.state = SeqState::kFinished;
      s.request->Finish(FinishReason::kStop);
    } else if (int64_t(s.generated.size()) >= params.max_tokens || total >= limits_.max_context) {
      s.state = SeqState::kFinished;
      s.request->Finish(FinishReason::kLength);
    }
  }
  if (resuming_ &&
      std::none_of(running_.begin(), running_.end(), [](const Seq& s) { return s.resuming(); })) {
    resumed_report_ = resuming_->report;
    resumed_report_->took =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - resuming_->began);
    resuming_.reset();
  }
}

std::optional<ResumeReport> SchedulerCore::TakeResumeReport() {
  std::optional<ResumeReport> out;
  out.swap(resumed_report_);
  return out;
}

void SchedulerCore::Fail(Seq& seq, const absl::Status& status) {
  if (Ended(seq.state)) return;
  seq.state = SeqState::kFailed;
  seq.request->Fail(status);
}

void SchedulerCore::OnResult(const StepResult& result, SchedulerClock::time_point now) {
  const absl::Status failed(result.status.code(),
                            absl::StrCat("generation failed: ", result.status.message()));
  auto flight = flights_.find(result.tag);
  // A step ahead of a refused one: the worker ran none of it. Its other sequences go again as
  // if it had not been sent (a chunk from its start).
  bool behind_refused = false;
  if (flight != flights_.end() && result.status.code() == absl::StatusCode::kFailedPrecondition) {
    for (const Flight& f : flight->second) {
      for (const Seq& s : running_) behind_refused |= s.slot == f.slot && s.refused_ahead_of;
    }
  }
  // Else a stage that could not be reached, or that no longer holds what was sent to it (it
  // restarted): its KV cache, and so every running sequence's, may be gone.
  const bool lost =
      !behind_refused && (result.status.code() == absl::StatusCode::kUnavailable ||
                          result.status.code() == absl::StatusCode::kFailedPrecondition);
  if (flight != flights_.end()) {
    for (const Flight& f : flight->second) {
      for (Seq& s : running_) {
        if (s.slot != f.slot) continue;
        const bool has_step_ahead = s.in_flight && s.ahead;
        (s.ahead ? s.ahead : s.in_flight) = false;  // the older of its two steps is back
        if (behind_refused) {
          if (s.state == SeqState::kPrefilling) s.prefilled = f.start;
          continue;
        }
        if (!result.status.ok() && !lost) {  // a worker refused this step
          s.refused_ahead_of = has_step_ahead;
          Fail(s, failed);
        }
        if (result.status.ok() && s.state != SeqState::kPaused && !Ended(s.state)) {
          s.written = f.end;
          RegisterBlocks(s);
        }
      }
    }
    flights_.erase(flight);
  }
  if (result.status.ok()) {
    Apply(result, now);
  } else if (lost) {
    Lose(failed, now);
  }
  PublishBlocks();
}

void SchedulerCore::Lose(const absl::Status& status, SchedulerClock::time_point now) {
  // The stages' caches may be gone: every sequence prefills again into new blocks, and no
  // registered block is shared any more.
  for (Seq& s : running_) ReleaseBlocks(s);
  pool_.Clear();
  if (!outage_since_) outage_since_ = now;
  if (limits_.resume_timeout.count() <= 0) {
    for (Seq& s : running_) Fail(s, status);
    return;
  }
  if (loss_.ok()) loss_ = status;
  resuming_.reset();  // cut short: the next resume is measured afresh
  int64_t paused = 0;
  for (Seq& s : running_) {
    if (Ended(s.state)) continue;
    if (s.state != SeqState::kPaused) {
      s.state = SeqState::kPaused;
      s.prefilled = 0;
      if (!s.lost_at) s.lost_at = now;
    }
    ++paused;
  }
  paused_ = paused;
}

bool SchedulerCore::Recover(bool ready, SchedulerClock::time_point now) {
  if (ready) {
    was_ready_ = true;
    outage_since_.reset();
  } else if (was_ready_) {  // (before the pipeline was first ready, nothing is lost)
    Lose(loss_.ok() ? Unreachable() : loss_, now);
  } else if (!outage_since_) {
    // Nor is anything running; but a request admitted on the pipeline's own word that it was
    // ready (before this core saw it) waits at most resume_timeout, as in any outage.
    outage_since_ = now;
  }
  // What waited too long fails with the loss's error.
  const absl::Status loss = loss_.ok() ? Unreachable() : loss_;
  const absl::Status expired =
      limits_.resume_timeout.count() <= 0
          ? loss
          : absl::Status(loss.code(),
                         absl::StrCat(loss.message(), " (not back within the resume timeout, ",
                                      limits_.resume_timeout.count(), " ms)"));
  int64_t paused = 0;
  for (Seq& s : running_) {
    if (s.state != SeqState::kPaused) continue;
    if (now - *s.lost_at >= limits_.resume_timeout) {
      Fail(s, expired);
    } else {
      ++paused;
    }
  }
  paused_ = paused;
  const bool outage_over = outage_since_ && now - *outage_since_ >= limits_.resume_timeout;
  holding_ = was_ready_ && limits_.resume_timeout.count() > 0 && !outage_over;
  if (outage_over) {
    // What queued after `ready` was read saw the pipeline ready again: it stays.
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(queue_, [&](const Seq& s) {
      if (s.queued_at > now) return false;
      s.request->Fail(expired);
      return true;
    });
  }
  if (!ready) return false;
  if (paused > 0 && !flights_.empty()) return false;  // what is in flight comes back first
  // Every stage answers: the paused sequences start again from their ids.
  Resuming resume{{}, now};
  for (Seq& s : running_) {
    if (s.state != SeqState::kPaused) continue;
    s.state = SeqState::kPrefilling;
    s.to_prefill = int64_t(s.request->prompt().size() + s.generated.size());
    ++resume.report.requests;
    resume.report.tokens += s.to_prefill;
    ++resumed_;
  }
  if (resume.report.requests > 0) resuming_ = resume;
  paused_ = 0;
  loss_ = absl::OkStatus();
  return true;
}

void SchedulerCore::Discard(const StepResult& result) {
  auto flight = flights_.find(result.tag);
  if (flight == flights_.end()) return;
  for (const Flight& f : flight->second) {
    for (Seq& s : running_) {
      if (s.slot == f.slot) (s.ahead ? s.ahead : s.in_flight) = false;
    }
  }
  flights_.erase(flight);
}

void SchedulerCore::FailAll(const absl::Status& status) {
  for (Seq& s : running_) Fail(s, status);
  std::lock_guard<std::mutex> lock(mu_);
  for (Seq& s : queue_) s.request->Fail(status);
}

}  // namespace lp
