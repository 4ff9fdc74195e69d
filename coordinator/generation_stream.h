// One submitted generation read back response by response: token ids, complete text (stop
// strings held back, output_processor.h), log-probabilities and, with the last, the finish
// reason and usage. What both public faces stream: the gRPC Generate (inference_service.h) and
// the OpenAI-compatible HTTP API (openai_http.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/output_processor.h"
#include "coordinator/request.h"
#include "coordinator/telemetry.h"
#include "layerpipe/v1/layerpipe.pb.h"

namespace lp {

class GenerationStream {
 public:
  // `telemetry` (may be null) hears how the request ended, under `tag`.
  GenerationStream(std::shared_ptr<Request> request, OutputProcessor output, int32_t logprobs,
                   Telemetry* telemetry, RequestTag tag);
  ~GenerationStream();  // an unfinished request is cancelled (the client went away)
  GenerationStream(const GenerationStream&) = delete;
  GenerationStream& operator=(const GenerationStream&) = delete;

  struct Piece {
    layerpipe::v1::GenerateResponse response;
    bool send = false;      // it carries tokens or the end
    bool finished = false;  // the last piece: nothing follows
  };
  // Waits up to `timeout_ms` for what the scheduler produced; a piece without `send` when
  // nothing came (the caller checks its client and polls again). An error: the cluster failed
  // the request (UNAVAILABLE, DEADLINE_EXCEEDED, ...).
  absl::StatusOr<Piece> Poll(int timeout_ms);
  // Drops the request at the next step boundary, freeing its KV cache.
  void Cancel();
  int32_t prompt_tokens() const { return int32_t(request_->prompt().size()); }

 private:
  std::shared_ptr<Request> request_;
  OutputProcessor output_;
  int32_t logprobs_;
  bool finished_ = false;
  Telemetry* telemetry_;
  RequestTag tag_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double ttft_s_ = -1;  // when the first token came
  void Ended(absl::StatusCode code, const std::string& finish, int64_t completion_tokens);
};

}  // namespace lp
