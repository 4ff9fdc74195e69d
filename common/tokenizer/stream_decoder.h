// Incremental detokenization for streaming: feed ids as the model produces them and get back
// only text that is complete. A character whose UTF-8 bytes are split across tokens (CJK,
// emoji: byte-level BPE cuts anywhere) is held until its last byte arrives, so the stream never
// carries a broken sequence; bytes that can never form a character become U+FFFD, as Decode
// would write them. The pieces joined equal Decode() of all the ids.
#pragma once

#include <cstdint>
#include <string>

#include "common/tokenizer/tokenizer.h"

namespace lp {

class StreamDecoder {
 public:
  // `tokenizer` must outlive the decoder.
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // Adds one token; returns the text that became complete (often empty while a character is
  // incomplete).
  std::string Push(int32_t id);
  // Ends the stream: returns what is still held, an unfinished character as U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;  // bytes of an unfinished character (at most 3)
};

}  // namespace lp
