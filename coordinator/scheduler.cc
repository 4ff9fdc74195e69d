// Continuous batching (see scheduler.h).
#include "coordinator/scheduler.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "absl/strings/str_cat.h"

namespace lp {

// ---- Request

Request::Events Request::Take(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
               [&] { return !tokens_.empty() || (done_ && !reported_); });
  Events out;
  out.tokens.swap(tokens_);
  out.done = done_;
  if (done_ && !reported_) {
    out.finish = finish_;
    out.error = error_;
    reported_ = true;
  }
  return out;
}

void Request::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
}

bool Request::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool Request::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

void Request::Push(const SampledToken& t) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;  // failed while its step was in flight
  tokens_.push_back(t);
  cv_.notify_all();
}

void Request::Finish(FinishReason reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  finish_ = reason;
  done_ = true;
  cv_.notify_all();
}

void Request::Fail(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  error_ = status;
  done_ = true;
  cv_.notify_all();
}

// ---- Scheduler

Scheduler::Scheduler(Pipeline* pipeline, const SchedulerLimits& limits)
    : pipeline_(pipeline), limits_(limits) {
  for (int32_t s = int32_t(limits.max_batch) - 1; s >= 0; --s) free_slots_.push_back(s);
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

absl::StatusOr<std::shared_ptr<Request>> Scheduler::Submit(std::vector<int32_t> prompt,
                                                           GenerationParams params) {
  if (!pipeline_->Ready()) {
    return absl::UnavailableError("the cluster is not ready: a worker is unreachable");
  }
  auto request = std::make_shared<Request>(std::move(prompt), std::move(params));
  {
    std::lock_guard<std::mutex> lock(mu_);
    DropCancelledLocked();
    // Requests that free KV slots will take at the next step boundary are not waiting: only
    // the rest count against the queue's capacity.
    const int64_t waiting = int64_t(queue_.size()) - int64_t(free_slots_.size());
    if (waiting >= limits_.queue_capacity) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the request queue is full (", limits_.queue_capacity, " waiting); retry later"));
    }
    queue_.push_back(request);
  }
  cv_.notify_all();
  return request;
}

int64_t Scheduler::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int64_t(std::count_if(queue_.begin(), queue_.end(),
                               [](const auto& r) { return !r->cancelled(); }));
}

void Scheduler::DropCancelledLocked() {
  std::erase_if(queue_, [](const std::shared_ptr<Request>& r) { return r->cancelled(); });
}

int64_t Scheduler::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return limits_.max_batch - int64_t(free_slots_.size());
}

void Scheduler::Admit() {
  std::lock_guard<std::mutex> lock(mu_);
  while (!queue_.empty() && !free_slots_.empty()) {
    auto request = std::move(queue_.front());
    queue_.pop_front();
    if (request->cancelled()) continue;
    Active a;
    a.request = std::move(request);
    a.slot = free_slots_.back();
    free_slots_.pop_back();
    a.generated.reserve(size_t(a.request->params().max_tokens));
    active_.push_back(std::move(a));
  }
}

bool Scheduler::BuildStep(int64_t max_seqs, StepInput* step) {
  step->seqs.clear();
  step->ids.clear();
  // Releases travel in the step stream ahead of any step that reuses their slots.
  step->release_slots.swap(to_release_);
  to_release_.clear();
  int64_t budget = limits_.max_step_tokens;
  // Decode tokens first: one each, latency-sensitive; prefill chunks take what is left.
  for (Active& a : active_) {
    const bool prefilling = a.prefilled < int64_t(a.request->prompt().size());
    if (a.in_flight || prefilling || a.generated.empty() || budget == 0 ||
        int64_t(step->seqs.size()) == max_seqs || a.request->done()) {
      continue;
    }
    const int64_t pos = int64_t(a.request->prompt().size() + a.generated.size()) - 1;
    step->seqs.push_back({a.slot, int32_t(pos), 1, true, a.request->params().sampling});
    step->ids.push_back(a.generated.back());
    a.in_flight = true;
    --budget;
  }
  for (Active& a : active_) {
    const auto& prompt = a.request->prompt();
    const int64_t left = int64_t(prompt.size()) - a.prefilled;
    if (a.in_flight || left <= 0 || budget == 0 || int64_t(step->seqs.size()) == max_seqs) continue;
    const int64_t n = std::min(left, budget);
    const bool completes = n == left;
    step->seqs.push_back({a.slot, int32_t(a.prefilled), int32_t(n), completes,
                          a.request->params().sampling});
    step->ids.insert(step->ids.end(), prompt.begin() + a.prefilled, prompt.begin() + a.prefilled + n);
    a.prefilled += n;
    a.in_flight = true;
    budget -= n;
  }
  return !step->seqs.empty() || !step->release_slots.empty();
}

void Scheduler::Apply(const StepResult& result) {
  for (const SampledToken& t : result.sampled) {
    auto it = std::find_if(active_.begin(), active_.end(), [&](const Active& a) { return a.slot == t.slot; });
    if (it == active_.end()) continue;
    Active& a = *it;
    a.generated.push_back(t.id);
    a.request->Push(t);
    const auto& params = a.request->params();
    const int64_t total = int64_t(a.request->prompt().size() + a.generated.size());
    if (params.stop_ids.count(t.id)) {
      a.request->Finish(FinishReason::kStop);
    } else if (int64_t(a.generated.size()) >= params.max_tokens || total >= limits_.max_context) {
      a.request->Finish(FinishReason::kLength);
    }
  }
}

// Drops finished and cancelled sequences that have no step in flight. Their slots are free at
// once: the next step submitted tells the workers, before anything that reuses them.
void Scheduler::Retire() {
  const size_t before = to_release_.size();
  for (auto it = active_.begin(); it != active_.end();) {
    if (!it->in_flight && (it->request->cancelled() || it->request->done())) {
      to_release_.push_back(it->slot);
      it = active_.erase(it);
    } else {
      ++it;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  free_slots_.insert(free_slots_.end(), to_release_.begin() + std::ptrdiff_t(before), to_release_.end());
}

void Scheduler::FailActive(const absl::Status& status) {
  for (Active& a : active_) a.request->Fail(status);
}

void Scheduler::Loop() {
  StepInput step;
  StepResult result;
  std::map<uint64_t, std::vector<int32_t>> flights;  // tag -> slots of that micro-batch
  uint64_t next_tag = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (in_flight_ == 0 && to_release_.empty()) {
        cv_.wait_for(lock, std::chrono::milliseconds(50),
                     [&] { return stopping_ || !queue_.empty() || !active_.empty(); });
      }
      if (stopping_) break;
    }
    Admit();
    Retire();
    // Spread the running sequences over one micro-batch per stage.
    const int64_t depth = std::max(1, pipeline_->depth());
    const int64_t per_batch = std::max<int64_t>(1, (int64_t(active_.size()) + depth - 1) / depth);
    while (in_flight_ < depth && BuildStep(per_batch, &step)) {
      std::vector<int32_t>& slots = flights[next_tag];
      for (const auto& s : step.seqs) slots.push_back(s.slot);
      pipeline_->Submit(next_tag++, std::move(step));
      ++in_flight_;
    }
    if (in_flight_ == 0 || !pipeline_->Next(50, &result)) continue;
    --in_flight_;
    const absl::Status failed(result.status.code(),
                              absl::StrCat("generation failed: ", result.status.message()));
    for (int32_t slot : flights[result.tag]) {
      for (Active& a : active_) {
        if (a.slot != slot) continue;
        a.in_flight = false;
        if (!result.status.ok()) a.request->Fail(failed);  // a worker refused this step
      }
    }
    flights.erase(result.tag);
    if (result.status.ok()) {
      Apply(result);
    } else if (result.status.code() == absl::StatusCode::kUnavailable) {
      FailActive(failed);  // a stage was lost, and every KV cache on it
    }
  }
  // Let the micro-batches in flight come back before the pipeline goes away.
  for (int tries = 0; in_flight_ > 0 && tries < 30; ++tries) {
    if (pipeline_->Next(1000, &result)) --in_flight_;
  }
  FailActive(absl::UnavailableError("the coordinator is shutting down"));
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : queue_) r->Fail(absl::UnavailableError("the coordinator is shutting down"));
}

}  // namespace lp
