// Text clean-up before splitting: invalid UTF-8 becomes U+FFFD (as Python's errors="replace"
// would give the reference tokenizer), then Unicode NFC, the normalizer Qwen's tokenizer.json
// names. Most text is already NFC, so a quick scan skips utf8proc when nothing can change.
#pragma once

#include <string>
#include <string_view>

namespace lp::tok {

// True when `text` is valid UTF-8 and NFC normalization is sure to leave it unchanged.
// Conservative: a false answer only means the slow path must run.
bool IsKnownNfc(std::string_view text);

// Valid UTF-8 in NFC for any input bytes.
std::string NormalizeNfc(std::string_view text);

}  // namespace lp::tok
