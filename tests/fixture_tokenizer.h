// The real Qwen3 tokenizer of the qwen3-tiny fixture, loaded once per test program, for the
// suites of the tokenizer and of what decodes generated ids.
#pragma once

#include <memory>

#include "common/tokenizer/tokenizer.h"
#include "fixture_util.h"

namespace lp::testing {

// Null when the fixture does not load; ASSERT_NE(FixtureTokenizer(), nullptr) first.
inline const Tokenizer* FixtureTokenizer() {
  static const std::unique_ptr<Tokenizer> tokenizer = [] {
    auto t = Tokenizer::Load(FixtureDir("qwen3-tiny"));
    return t.ok() ? std::move(*t) : nullptr;
  }();
  return tokenizer.get();
}

}  // namespace lp::testing
