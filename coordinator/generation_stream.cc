// One submitted generation read back response by response (see generation_stream.h).
#include "coordinator/generation_stream.h"

namespace lp {
namespace {

layerpipe::v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return layerpipe::v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop:
      return layerpipe::v1::FINISH_REASON_STOP;
    default:
      return layerpipe::v1::FINISH_REASON_UNSPECIFIED;
  }
}

}  // namespace

GenerationStream::GenerationStream(std::shared_ptr<Request> request, OutputProcessor output,
                                   int32_t logprobs, Telemetry* telemetry, RequestTag tag)
    : request_(std::move(request)),
      output_(std::move(output)),
      logprobs_(logprobs),
      telemetry_(telemetry),
      tag_(std::move(tag)) {}

GenerationStream::~GenerationStream() {
  if (finished_) return;
  request_->Cancel();
  Ended(absl::StatusCode::kCancelled, "", output_.usage().completion_tokens);
}

void GenerationStream::Ended(absl::StatusCode code, const std::string& finish,
                             int64_t completion_tokens) {
  finished_ = true;
  if (telemetry_ == nullptr) return;
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  telemetry_->RequestEnded(tag_,
                           {code, finish, prompt_tokens(), completion_tokens, ttft_s_, total});
}

void GenerationStream::Cancel() { request_->Cancel(); }

absl::StatusOr<GenerationStream::Piece> GenerationStream::Poll(int timeout_ms) {
  const Request::Events ev = request_->Take(timeout_ms);
  const OutputDelta delta = output_.Add(ev.tokens, ev.done, ev.finish);
  if (delta.finished && !ev.done) request_->Cancel();  // the scheduler drops it at the next step
  if (ev.done && !ev.error.ok()) {
    Ended(ev.error.code(), "", output_.usage().completion_tokens);
    return ev.error;
  }
  if (ttft_s_ < 0 && !ev.tokens.empty()) {
    ttft_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  Piece piece;
  layerpipe::v1::GenerateResponse& response = piece.response;
  for (size_t i = 0; i < delta.n_tokens; ++i) {
    const SampledToken& t = ev.tokens[i];
    response.add_token_ids(t.id);
    if (logprobs_ > 0) {
      auto* lp = response.add_logprobs();
      lp->mutable_chosen()->set_id(t.id);
      lp->mutable_chosen()->set_logprob(t.logprob);
      for (size_t k = 0; k < t.top_ids.size(); ++k) {
        auto* top = lp->add_top();
        top->set_id(t.top_ids[k]);
        top->set_logprob(t.top_logprobs[k]);
      }
    }
  }
  if (delta.finished) {
    response.set_finish_reason(ToProto(delta.finish_reason));
    response.mutable_usage()->set_prompt_tokens(output_.usage().prompt_tokens);
    response.mutable_usage()->set_completion_tokens(output_.usage().completion_tokens);
    Ended(absl::StatusCode::kOk, delta.finish_reason == FinishReason::kLength ? "length" : "stop",
          output_.usage().completion_tokens);
  }
  response.set_text(delta.text);
  piece.send = delta.n_tokens > 0 || delta.finished;
  piece.finished = delta.finished;
  return piece;
}

}  // namespace lp
