// A large mixed text for tokenizer benchmarks, the same bytes for a given size and seed on every
// machine: English prose, source code, Chinese / Japanese / Korean, Cyrillic and Arabic,
// accented Latin, emoji (with skin tones and ZWJ sequences), numbers and whitespace runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lp::cli {

std::string MakeBenchText(size_t bytes, uint64_t seed);

}  // namespace lp::cli
