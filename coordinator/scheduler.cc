// The scheduler thread (see scheduler.h).
#include "coordinator/scheduler.h"

#include <chrono>
#include <cstdio>
#include <deque>

namespace lp {
namespace {

SchedulerLimits WithDecodeAhead(SchedulerLimits limits, const Pipeline& pipeline) {
  limits.decode_ahead = pipeline.decode_ahead();
  return limits;
}

}  // namespace

Scheduler::Scheduler(Pipeline* pipeline, const SchedulerLimits& limits, StepObserver on_step)
    : pipeline_(pipeline), core_(WithDecodeAhead(limits, *pipeline)), on_step_(std::move(on_step)) {
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
  if (draining_) {
    return absl::UnavailableError("the coordinator is shutting down: send the request elsewhere");
  }
  // In an outage that resuming may bridge, new requests wait with the paused ones.
  if (!pipeline_->Ready() && !core_.holding()) {
    return absl::UnavailableError("the cluster is not ready: a worker is unreachable");
  }
  auto request = core_.Add(std::move(prompt), std::move(params));
  if (!request.ok()) return request;
  // Taking the lock orders this with the loop's check for work: the wake-up is not lost.
  { std::lock_guard<std::mutex> lock(mu_); }
  cv_.notify_all();
  return request;
}

void Scheduler::Loop() {
  StepResult result;
  // Steps in flight, oldest first (results come back in order): when sent, tokens, decode.
  struct Sent {
    std::chrono::steady_clock::time_point at;
    int64_t tokens;
    bool decode;
  };
  std::deque<Sent> sent;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (core_.idle()) {
        cv_.wait_for(lock, std::chrono::milliseconds(50),
                     [&] { return stopping_ || core_.has_work(); });
      }
      if (stopping_) break;
    }
    const auto now = SchedulerClock::now();  // before the read: see Schedule
    const bool ready = pipeline_->Ready();
    for (ScheduledStep& step : core_.Schedule(pipeline_->depth(), ready, now)) {
      const int64_t tokens = int64_t(step.input.ids.size());
      sent.push_back(
          {std::chrono::steady_clock::now(), tokens, tokens == int64_t(step.input.seqs.size())});
      pipeline_->Submit(step.tag, std::move(step.input));
    }
    if (core_.in_flight() == 0) {
      // In an outage nothing can be sent: look again after a pause, not at once.
      if (!ready) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, kOutagePoll, [&] { return stopping_; });
      }
      continue;
    }
    if (!pipeline_->Next(50, &result)) continue;
    if (!sent.empty()) {
      if (on_step_ && sent.front().tokens > 0) {
        on_step_(std::chrono::duration<double>(std::chrono::steady_clock::now() - sent.front().at)
                     .count(),
                 sent.front().tokens, sent.front().decode);
      }
      sent.pop_front();
    }
    core_.OnResult(result);
    if (const auto resumed = core_.TakeResumeReport()) {
      std::fprintf(
          stderr, "coordinator: resumed %lld requests (%lld tokens prefilled again) in %lld ms\n",
          static_cast<long long>(resumed->requests), static_cast<long long>(resumed->tokens),
          static_cast<long long>(resumed->took.count()));
    }
  }
  // Let the micro-batches in flight come back before the pipeline goes away.
  for (int tries = 0; core_.in_flight() > 0 && tries < 30; ++tries) {
    if (pipeline_->Next(1000, &result)) core_.Discard(result);
  }
  core_.FailAll(absl::UnavailableError("the coordinator is shutting down"));
}

}  // namespace lp
