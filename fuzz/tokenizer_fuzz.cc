// Fuzz target: the tokenizer of the qwen3-tiny fixture (Qwen3's real tokenizer.json). The first
// byte picks what the rest is: text to encode (its ids must lie in the vocabulary, decode back
// to the text's NFC form, and stream-decode to what Decode gives), or ids (any int32, most of
// them inside the vocabulary) to decode and stream-decode alike.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/tokenizer/normalizer.h"
#include "common/tokenizer/stream_decoder.h"
#include "common/tokenizer/tokenizer.h"
#include "fuzz/fixture_dir.h"

namespace {

const lp::Tokenizer& Fixture() {
  static const lp::Tokenizer* tokenizer = [] {
    auto t = lp::Tokenizer::Load(lp::fuzz::FixtureDir("qwen3-tiny"));
    if (!t.ok()) {
      std::fprintf(stderr, "tokenizer_fuzz: %s\n", std::string(t.status().message()).c_str());
      std::abort();
    }
    return t->release();
  }();
  return *tokenizer;
}

// Decode(ids) must equal the streamed pieces joined.
void CheckStreaming(const lp::Tokenizer& t, const std::vector<int32_t>& ids) {
  const std::string whole = t.Decode(ids);
  lp::StreamDecoder stream(t);
  std::string joined;
  for (int32_t id : ids) joined += stream.Push(id);
  joined += stream.Flush();
  if (joined != whole) std::abort();
}

}  // namespace

// Loads the fixture before the first input, so that no input is timed with it.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Encoding is linear in the text, but a few KB is enough to reach every path.
  if (size < 1 || size > 4096) return 0;
  const lp::Tokenizer& t = Fixture();
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    const std::vector<int32_t> ids = t.Encode(rest);
    for (int32_t id : ids) {
      if (id < 0 || id >= t.vocab_size()) std::abort();
    }
    if (t.Decode(ids) != lp::tok::NormalizeNfc(rest)) std::abort();
    CheckStreaming(t, ids);
    return 0;
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 4 <= rest.size(); i += 4) {
    uint32_t v;
    std::memcpy(&v, rest.data() + i, 4);
    // Raw values (negative, huge) when the top bit is set; else mostly real tokens.
    ids.push_back(v & 0x80000000u ? int32_t(v) : int32_t(v % uint32_t(t.vocab_size() + 16)));
  }
  CheckStreaming(t, ids);
  return 0;
}
