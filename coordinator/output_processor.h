// What a request's generated tokens become for its client, apart from any transport: text
// decoded incrementally (complete UTF-8 only), stop strings found across tokens and held back,
// the finish reason and the usage counts. The gRPC Generate handler is a thin adapter over it;
// an HTTP front would be another.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/stream_decoder.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/pipeline.h"
#include "coordinator/scheduler.h"
#include "coordinator/stop_matcher.h"

namespace lp {

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
};

// What one batch of tokens adds to the output.
struct OutputDelta {
  // How many of the tokens given are output: all of them, or those up to and including the
  // one that completed a stop string.
  size_t n_tokens = 0;
  std::string text;       // text that became complete (a stop string and what follows never)
  bool finished = false;  // the output is complete: nothing more will be accepted
  FinishReason finish_reason = FinishReason::kNone;  // when finished
};

class OutputProcessor {
 public:
  // `tokenizer` (may be null: token ids only, no text) must outlive the processor. Stop strings
  // need a tokenizer: INVALID_ARGUMENT without one. Tokens in `stop_ids` are counted but not
  // rendered.
  static absl::StatusOr<OutputProcessor> Create(const Tokenizer* tokenizer,
                                                std::vector<std::string> stop_strings,
                                                std::set<int32_t> stop_ids, int32_t prompt_tokens);

  // Adds the tokens the scheduler produced since the last call; `done` with its `finish`
  // reason when the scheduler ended the request (success only: a failure is the caller's).
  // The delta may finish before the scheduler does (a stop string): the caller then cancels
  // the request. Not called again once finished.
  OutputDelta Add(std::span<const SampledToken> tokens, bool done, FinishReason finish);

  const Usage& usage() const { return usage_; }
  bool finished() const { return finished_; }

 private:
  OutputProcessor(const Tokenizer* tokenizer, std::vector<std::string> stop_strings,
                  std::set<int32_t> stop_ids, int32_t prompt_tokens);

  std::optional<StreamDecoder> decoder_;  // none without a tokenizer
  StopMatcher stops_;
  std::set<int32_t> stop_ids_;
  Usage usage_;
  bool finished_ = false;
};

}  // namespace lp
