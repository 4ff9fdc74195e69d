// GPT-2's byte-level alphabet, as Qwen's tokenizer.json writes its vocabulary and merges:
// every byte is shown as one printable code point (space is "Ġ", newline "Ċ"). The tokenizer
// converts the vocabulary to raw bytes once at load, so encoding never maps bytes to code points.
// Also the UTF-8 helpers that decoding needs (lossy conversion like Rust's from_utf8_lossy).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace lp::tok {

// The code point that stands for `byte` in tokenizer.json.
char32_t ByteToCodePoint(unsigned char byte);

// Converts a token written in the byte-level alphabet back to its raw bytes; nullopt when the
// text holds a code point outside the alphabet (or is not UTF-8).
std::optional<std::string> ByteLevelToBytes(std::string_view token);

// Appends the UTF-8 encoding of `cp`.
void AppendUtf8(char32_t cp, std::string* out);

// Length of the valid UTF-8 character at the start of `s` (1..4), or 0 when it is invalid or
// incomplete. `*incomplete` is set when the bytes present are a valid prefix cut short by the
// end of `s` (more bytes could complete it); otherwise the invalid part to replace is
// `*invalid_len` bytes long (the maximal subpart, as Rust and the Unicode standard replace).
size_t Utf8CharLength(std::string_view s, bool* incomplete, size_t* invalid_len);

// Appends `bytes` to `out`, each maximal invalid subpart replaced by U+FFFD. When
// `hold_incomplete` is set, a valid but unfinished character at the end is not converted:
// the return value is how many bytes were consumed (the rest must wait for more bytes).
size_t AppendUtf8Lossy(std::string_view bytes, bool hold_incomplete, std::string* out);

}  // namespace lp::tok
