// Streaming detokenization: characters split across tokens are held until complete, the
// pieces never carry broken UTF-8, and together they equal Decode() of all the ids.
#include "common/tokenizer/stream_decoder.h"

#include <gtest/gtest.h>

#include <random>

#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/tokenizer.h"
#include "fixture_tokenizer.h"
#include "fixture_util.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;
using lp::testing::FixtureTokenizer;

class StreamDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(FixtureTokenizer(), nullptr) << "qwen3-tiny's tokenizer"; }
  static const Tokenizer& tok() { return *FixtureTokenizer(); }
  // The token of one raw byte (every byte has one in a byte-level vocabulary).
  static int32_t ByteToken(unsigned char b) {
    std::string s;
    tok::AppendUtf8(tok::ByteToCodePoint(b), &s);
    return *tok().TokenId(s);
  }
};

bool IsValidUtf8(const std::string& s) {
  std::string copy;
  tok::AppendUtf8Lossy(s, false, &copy);
  return copy == s;
}

// Streams `ids` and checks every piece is whole UTF-8 and the pieces add up to Decode(ids).
std::vector<std::string> StreamAll(const Tokenizer& t, const std::vector<int32_t>& ids) {
  StreamDecoder d(t);
  std::vector<std::string> pieces;
  std::string all;
  for (int32_t id : ids) {
    pieces.push_back(d.Push(id));
    EXPECT_TRUE(IsValidUtf8(pieces.back()));
    all += pieces.back();
  }
  all += d.Flush();
  EXPECT_EQ(all, t.Decode(ids));
  return pieces;
}

TEST_F(StreamDecoderTest, MultiByteCharacterSplitIntoSingleBytesIsHeld) {
  // 😀 is F0 9F 98 80: nothing comes out until the fourth byte.
  std::vector<int32_t> ids = {ByteToken('a'),  ByteToken(0xF0), ByteToken(0x9F),
                              ByteToken(0x98), ByteToken(0x80), ByteToken('b')};
  auto pieces = StreamAll(tok(), ids);
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "", "", "", "\xF0\x9F\x98\x80", "b"}));
}

TEST_F(StreamDecoderTest, EmojiSequencesAsTheModelWouldProduceThem) {
  // Family (ZWJ sequence), skin tone, flag, CJK: the reference splits these inside characters.
  const std::string text =
      "emoji 😀👍🏽 and 👨‍👩‍👧 🇯🇵 大型语言模型 한국어";
  std::vector<int32_t> ids = tok().Encode(text);
  auto pieces = StreamAll(tok(), ids);
  size_t empty = 0;
  for (const auto& p : pieces) empty += p.empty();
  EXPECT_GT(empty, 0u) << "expected some tokens to end inside a character";
  std::string joined;
  for (const auto& p : pieces) joined += p;
  EXPECT_EQ(joined, text);  // whole characters only: no U+FFFD anywhere
}

TEST_F(StreamDecoderTest, BytesThatCannotFormACharacterBecomeReplacement) {
  StreamDecoder d(tok());
  EXPECT_EQ(d.Push(ByteToken(0xFF)), "\xEF\xBF\xBD");  // never valid: at once
  EXPECT_EQ(d.Push(ByteToken(0xE2)), "");              // could still complete
  EXPECT_EQ(d.Push(ByteToken(0x82)), "");
  EXPECT_EQ(d.Push(ByteToken('A')),
            "\xEF\xBF\xBD"
            "A");  // cut short: one U+FFFD
  EXPECT_EQ(d.Push(ByteToken(0xC3)), "");
  EXPECT_EQ(d.Flush(), "\xEF\xBF\xBD");  // unfinished at the end
  EXPECT_EQ(d.Flush(), "");
}

TEST_F(StreamDecoderTest, SpecialTokensStreamAsText) {
  std::vector<int32_t> ids = tok().Encode("<|im_start|>assistant\n你好<|im_end|>");
  StreamAll(tok(), ids);
}

TEST_F(StreamDecoderTest, RandomByteTokenStreamsMatchDecode) {
  std::mt19937_64 rng(5);
  const std::string text = "naïve café 日本語 😀👨‍👩‍👧 ok";
  for (int round = 0; round < 200; ++round) {
    std::vector<int32_t> ids;
    // Valid text cut into single-byte tokens, with an occasional stray byte.
    for (unsigned char b : text) {
      ids.push_back(ByteToken(b));
      if (rng() % 40 == 0) ids.push_back(ByteToken(static_cast<unsigned char>(0x80 + rng() % 128)));
    }
    StreamAll(tok(), ids);
  }
}

}  // namespace
}  // namespace lp
