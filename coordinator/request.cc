// The request mailbox (see request.h).
#include "coordinator/request.h"

#include <chrono>

namespace lp {

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

}  // namespace lp
