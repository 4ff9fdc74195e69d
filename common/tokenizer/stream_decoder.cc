// Incremental detokenization (see stream_decoder.h).
#include "common/tokenizer/stream_decoder.h"

#include "common/tokenizer/byte_level.h"

namespace lp {

std::string StreamDecoder::Push(int32_t id) {
  tokenizer_.AppendTokenBytes(id, &pending_);
  std::string text;
  size_t used = tok::AppendUtf8Lossy(pending_, /*hold_incomplete=*/true, &text);
  pending_.erase(0, used);
  return text;
}

std::string StreamDecoder::Flush() {
  std::string text;
  tok::AppendUtf8Lossy(pending_, /*hold_incomplete=*/false, &text);
  pending_.clear();
  return text;
}

}  // namespace lp
