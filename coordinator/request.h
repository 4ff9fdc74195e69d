// One generation request as the RPC handler and the scheduler share it: its prompt and
// parameters, and a small mailbox through which the scheduler hands over sampled tokens, the
// finish reason or an error, and the handler asks for cancellation. The only object the two
// threads both touch, so the only one here with a lock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/pipeline.h"

namespace lp {

enum class FinishReason { kNone, kLength, kStop };

struct GenerationParams {
  int64_t max_tokens = 0;  // >= 1 (the service resolves "unset")
  SamplingParams sampling;
  std::set<int32_t> stop_ids;  // EOS ids (unless ignored) and the request's stop ids
  std::string request_id;      // names the request in logs and worker errors
};

// One request's side of the exchange: the scheduler appends, the RPC handler takes.
class Request {
 public:
  Request(std::vector<int32_t> prompt, GenerationParams params)
      : prompt_(std::move(prompt)), params_(std::move(params)) {}

  struct Events {
    std::vector<SampledToken> tokens;
    FinishReason finish = FinishReason::kNone;
    absl::Status error;  // set when the request failed
    bool done = false;   // finished or failed: nothing more will come
  };
  // Waits up to `timeout_ms` for something new and takes it.
  Events Take(int timeout_ms);
  // Asks the scheduler to drop the request at the next step boundary.
  void Cancel();

  const std::vector<int32_t>& prompt() const { return prompt_; }
  const GenerationParams& params() const { return params_; }

 private:
  friend class SchedulerCore;
  void Push(const SampledToken& t);
  void Finish(FinishReason reason);
  void Fail(const absl::Status& status);
  bool cancelled() const;

  const std::vector<int32_t> prompt_;
  const GenerationParams params_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SampledToken> tokens_;  // not yet taken
  FinishReason finish_ = FinishReason::kNone;
  absl::Status error_;
  bool done_ = false;
  bool reported_ = false;  // the end was handed to Take
  bool cancelled_ = false;
};

}  // namespace lp
