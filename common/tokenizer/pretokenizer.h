// The `Split` pre-tokenizer of tokenizer.json: cuts text into the pieces ("words") that BPE
// then works on, with a Unicode regex. Qwen's pattern needs a lookahead (`\s+(?!\S)`) that RE2
// cannot express, so this is PCRE2 (UTF + UCP, so \s, \p{L}, \p{N} and case-insensitivity are
// Unicode's), compiled to machine code with its JIT.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace lp::tok {

class Pretokenizer {
 public:
  // `pattern` is the regex as tokenizer.json writes it (Oniguruma syntax, which PCRE2 reads the
  // same for the constructs Qwen / GPT-style patterns use).
  static absl::StatusOr<std::unique_ptr<Pretokenizer>> Create(const std::string& pattern);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Calls `piece` for each piece of `text` in order, "Isolated" behaviour: every match is a
  // piece and so is every stretch between matches; together they cover `text` exactly.
  // `text` must be valid UTF-8. Thread-safe.
  void Split(std::string_view text, absl::FunctionRef<void(std::string_view)> piece) const;

 private:
  Pretokenizer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lp::tok
