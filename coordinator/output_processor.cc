// A request's output, apart from the transport (see output_processor.h).
#include "coordinator/output_processor.h"

namespace lp {

absl::StatusOr<OutputProcessor> OutputProcessor::Create(const Tokenizer* tokenizer,
                                                        std::vector<std::string> stop_strings,
                                                        std::set<int32_t> stop_ids,
                                                        int32_t prompt_tokens) {
  if (!stop_strings.empty() && tokenizer == nullptr) {
    return absl::InvalidArgumentError(
        "stop strings need a tokenizer; this model has none (use stop_token_ids)");
  }
  return OutputProcessor(tokenizer, std::move(stop_strings), std::move(stop_ids), prompt_tokens);
}

OutputProcessor::OutputProcessor(const Tokenizer* tokenizer, std::vector<std::string> stop_strings,
                                 std::set<int32_t> stop_ids, int32_t prompt_tokens)
    : stops_(std::move(stop_strings)), stop_ids_(std::move(stop_ids)) {
  if (tokenizer != nullptr) decoder_.emplace(*tokenizer);
  usage_.prompt_tokens = prompt_tokens;
}

OutputDelta OutputProcessor::Add(std::span<const SampledToken> tokens, bool done,
                                 FinishReason finish) {
  OutputDelta d;
  if (finished_) {
    d.finished = true;
    return d;
  }
  for (const SampledToken& t : tokens) {
    if (stops_.stopped()) break;  // tokens after a stop string are not output
    ++d.n_tokens;
    ++usage_.completion_tokens;
    // A stop token ends the text; it is not rendered.
    if (decoder_ && !stop_ids_.count(t.id)) d.text += stops_.Feed(decoder_->Push(t.id));
  }
  if (done && !stops_.stopped()) {
    if (decoder_) d.text += stops_.Feed(decoder_->Flush());
    d.text += stops_.Flush();  // nothing once the flushed tail completed a stop string
  }
  if (stops_.stopped() || done) {
    finished_ = true;
    d.finished = true;
    d.finish_reason = stops_.stopped() ? FinishReason::kStop : finish;
  }
  return d;
}

}  // namespace lp
