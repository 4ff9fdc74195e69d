// Continuous batching without a thread (see scheduler_core.h).
#include "coordinator/scheduler_core.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lp {

SchedulerCore::SchedulerCore(const SchedulerLimits& limits) : limits_(limits) {
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
  std::lock_guard<std::mutex> lock(mu_);
  while (!queue_.empty() && !free_slots_.empty()) {
    Seq seq = std::move(queue_.front());
    queue_.pop_front();
    if (seq.request->cancelled()) continue;
    seq.state = SeqState::kPrefilling;
    seq.slot = free_slots_.back();
    free_slots_.pop_back();
    seq.generated.reserve(size_t(seq.request->params().max_tokens));
    running_.push_back(std::move(seq));
  }
}

// Drops ended and cancelled sequences that have no micro-batch in flight. Their slots are free
// at once: the next step submitted tells the workers, before anything that reuses them.
void SchedulerCore::Retire() {
  const size_t before = to_release_.size();
  for (auto it = running_.begin(); it != running_.end();) {
    if (!Ended(it->state) && it->request->cancelled()) it->state = SeqState::kCancelled;
    if (!it->in_flight && Ended(it->state)) {
      to_release_.push_back(it->slot);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  free_slots_.insert(free_slots_.end(), to_release_.begin() + std::ptrdiff_t(before),
                     to_release_.end());
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
    if (s.in_flight || s.state != SeqState::kDecoding || budget == 0 ||
        int64_t(step->seqs.size()) == micro_batch_seqs) {
      continue;
    }
    const int64_t pos = int64_t(s.request->prompt().size() + s.generated.size()) - 1;
    step->seqs.push_back({s.slot, int32_t(pos), 1, s.request->params().sampling});
    step->request_ids.push_back(s.request->params().request_id);
    step->ids.push_back(s.generated.back());
    s.in_flight = true;
    --budget;
  }
  for (Seq& s : running_) {
    const auto& prompt = s.request->prompt();
    const int64_t left = int64_t(prompt.size()) - s.prefilled;
    if (s.in_flight || s.state != SeqState::kPrefilling || left <= 0 || budget == 0 ||
        int64_t(step->seqs.size()) == micro_batch_seqs) {
      continue;
    }
    const int64_t n = std::min(left, budget);
    const bool completes = n == left;
    step->seqs.push_back({s.slot, int32_t(s.prefilled), int32_t(n),
                          completes ? std::optional(s.request->params().sampling) : std::nullopt});
    step->request_ids.push_back(s.request->params().request_id);
    step->ids.insert(step->ids.end(), prompt.begin() + s.prefilled,
                     prompt.begin() + s.prefilled + n);
    s.prefilled += n;
    s.in_flight = true;
    budget -= n;
  }
  return !step->seqs.empty() || !step->release_slots.empty();
}

std::vector<ScheduledStep> SchedulerCore::Schedule(int depth) {
  Admit();
  Retire();
  // Spread the running sequences over one micro-batch per stage.
  depth = std::max(1, depth);
  const int64_t per_batch = std::max<int64_t>(1, (int64_t(running_.size()) + depth - 1) / depth);
  std::vector<ScheduledStep> steps;
  ScheduledStep step;
  while (in_flight() < depth && BuildStep(per_batch, &step.input)) {
    step.tag = next_tag_++;
    std::vector<int32_t>& slots = flights_[step.tag];
    for (const auto& s : step.input.seqs) slots.push_back(s.slot);
    steps.push_back(std::move(step));
    step = {};
  }
  return steps;
}

void SchedulerCore::Apply(const StepResult& result) {
  for (const SampledToken& t : result.sampled) {
    auto it = std::find_if(running_.begin(), running_.end(),
                           [&](const Seq& s) { return s.slot == t.slot; });
    if (it == running_.end() || Ended(it->state)) continue;  // its request has failed or gone
    Seq& s = *it;
    s.generated.push_back(t.id);
    s.request->Push(t);
    if (s.prefilled == int64_t(s.request->prompt().size())) s.state = SeqState::kDecoding;
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
}

void SchedulerCore::Fail(Seq& seq, const absl::Status& status) {
  if (Ended(seq.state)) return;
  seq.state = SeqState::kFailed;
  seq.request->Fail(status);
}

void SchedulerCore::OnResult(const StepResult& result) {
  const absl::Status failed(result.status.code(),
                            absl::StrCat("generation failed: ", result.status.message()));
  auto flight = flights_.find(result.tag);
  if (flight != flights_.end()) {
    for (int32_t slot : flight->second) {
      for (Seq& s : running_) {
        if (s.slot != slot) continue;
        s.in_flight = false;
        if (!result.status.ok()) Fail(s, failed);  // a worker refused this step
      }
    }
    flights_.erase(flight);
  }
  if (result.status.ok()) {
    Apply(result);
  } else if (result.status.code() == absl::StatusCode::kUnavailable) {
    for (Seq& s : running_) Fail(s, failed);  // a stage was lost, and every KV cache on it
  }
}

void SchedulerCore::Discard(const StepResult& result) {
  auto flight = flights_.find(result.tag);
  if (flight == flights_.end()) return;
  for (int32_t slot : flight->second) {
    for (Seq& s : running_) {
      if (s.slot == slot) s.in_flight = false;
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
