// The tokenizer against the reference (Hugging Face `tokenizers` on the real Qwen3 tokenizer.json):
// every fixture case exact in ids and decoding, long words, added tokens, NFC, invalid input,
// and the round trip decode(encode(s)) == NFC(s) on random Unicode strings.
#include "common/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "common/model_config.h"
#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/normalizer.h"
#include "fixture_tokenizer.h"
#include "fixture_util.h"
#include "utf8proc.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;
using lp::testing::FixtureTokenizer;

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(FixtureTokenizer(), nullptr) << "qwen3-tiny's tokenizer"; }
  static const Tokenizer& tok() { return *FixtureTokenizer(); }
};

// utf8proc directly, independent of the tokenizer's quick check.
std::string ReferenceNfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                   &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  EXPECT_GE(n, 0);
  std::string r(reinterpret_cast<char*>(out), size_t(n));
  std::free(out);
  return r;
}

TEST_F(TokenizerTest, EveryFixtureCaseIsExact) {
  auto j = lp::testing::LoadJson(FixtureDir("tokenizer_cases.json"));
  ASSERT_GE(j["cases"].size(), 20u);
  for (const auto& c : j["cases"]) {
    const std::string text = c["text"];
    std::vector<int32_t> ids = tok().Encode(text);
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok().Decode(c["ids"].get<std::vector<int32_t>>()), c["decoded"].get<std::string>());
  }
}

TEST_F(TokenizerTest, VocabularyAndTokenIds) {
  EXPECT_EQ(tok().vocab_size(), 151669);  // len(tokenizer): 151643 entries + 26 added tokens
  EXPECT_EQ(tok().TokenId("<|im_end|>"), 151645);
  EXPECT_EQ(tok().TokenId("<think>"), 151667);
  EXPECT_EQ(tok().TokenId("Ġthe"), 279);  // byte-level spelling of " the"
  EXPECT_EQ(tok().TokenId("the"), 1782);
  EXPECT_EQ(tok().TokenId("no such token here"), std::nullopt);
}

// Words longer than the flat-array limit take the heap path; references from the reference BPE.
TEST_F(TokenizerTest, LongWordsMergeLikeTheReference) {
  std::vector<int32_t> a300(37, 69440);
  a300.push_back(28458);
  EXPECT_EQ(tok().Encode(std::string(300, 'a')), a300);
  std::string han;
  for (int i = 0; i < 50; ++i) han += "的";
  std::vector<int32_t> han_ids(49, 9370);
  han_ids.push_back(100146);
  EXPECT_EQ(tok().Encode(han + "是"), han_ids);
  std::string ab;
  for (int i = 0; i < 100; ++i) ab += "ab";
  EXPECT_EQ(tok().Encode(ab), std::vector<int32_t>(100, 370));
}

TEST_F(TokenizerTest, AddedTokensAreMatchedBeforeSplitting) {
  // Non-special added tokens (<think>) too; a partial one is ordinary text.
  std::vector<int32_t> ids = tok().Encode("<think>x</think><|im_st");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], 151667);
  EXPECT_EQ(ids[2], 151668);
  EXPECT_EQ(tok().Decode(ids), "<think>x</think><|im_st");
  EXPECT_EQ(tok().Encode("<|im_start|><|im_end|>"), (std::vector<int32_t>{151644, 151645}));
}

TEST_F(TokenizerTest, TextIsNormalizedToNfc) {
  // "e" + combining acute is encoded as the composed "é"; Hangul jamo compose into a syllable.
  EXPECT_EQ(tok().Encode("caf"
                         "e\xCC\x81"),
            tok().Encode("caf\xC3\xA9"));
  EXPECT_EQ(tok().Encode("\xE1\x84\x80\xE1\x85\xA1"), tok().Encode("\xEA\xB0\x80"));  // 가
  EXPECT_EQ(tok().Encode("\xE2\x84\xAB"), tok().Encode("\xC3\x85"));  // Angstrom sign -> Å
}

TEST_F(TokenizerTest, InvalidUtf8IsEncodedAsReplacementCharacters) {
  std::string bad =
      "ab\xFF"
      "c\xE2\x82"
      "d\xC3";
  std::string replaced =
      "ab\xEF\xBF\xBD"
      "c\xEF\xBF\xBD"
      "d\xEF\xBF\xBD";
  EXPECT_EQ(tok().Encode(bad), tok().Encode(replaced));
  // Decoding bytes that are not UTF-8 shows each maximal bad subpart as one U+FFFD.
  std::vector<int32_t> ids = {*tok().TokenId("Ã"), *tok().TokenId("a")};  // 0xC3 then 'a'
  EXPECT_EQ(tok().Decode(ids),
            "\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(tok().Decode(std::vector<int32_t>{1 << 30, -1}), "");  // unknown ids are skipped
}

// Random strings over many scripts, marks, emoji, unassigned and private-use code points.
std::string RandomUnicode(std::mt19937_64& rng) {
  static const std::vector<std::pair<char32_t, char32_t>> kRanges = {
      {0x20, 0x7E},     {0x09, 0x0D},       {0xA0, 0x24F},    {0x300, 0x36F},
      {0x370, 0x6FF},   {0x900, 0x97F},     {0x1100, 0x11FF}, {0x2000, 0x206F},
      {0x3000, 0x30FF}, {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
      {0xFE00, 0xFFFD}, {0x1F300, 0x1FAFF}, {0x1, 0xD7FF},    {0xE000, 0x10FFFF}};
  std::string s;
  size_t n = rng() % 40;
  for (size_t i = 0; i < n; ++i) {
    auto [lo, hi] = kRanges[rng() % kRanges.size()];
    char32_t cp = lo + char32_t(rng() % (hi - lo + 1));
    tok::AppendUtf8(cp, &s);
    if (rng() % 50 == 0) s += "<|im_end|>";  // special tokens inside the text
  }
  return s;
}

// NFC of the text between added tokens: they are matched in the raw text before normalizing (as
// `tokenizers` does for tokens with normalized=false), so "<|im_end|>" + U+0338 keeps its ">"
// where NFC of the whole would write "≯".
std::string NfcBetweenAddedTokens(const std::string& s) {
  const std::string kEnd = "<|im_end|>";
  std::string out;
  size_t start = 0;
  for (size_t at = s.find(kEnd); at != std::string::npos; at = s.find(kEnd, start)) {
    out += ReferenceNfc(s.substr(start, at - start)) + kEnd;
    start = at + kEnd.size();
  }
  return out + ReferenceNfc(s.substr(start));
}

TEST_F(TokenizerTest, RoundTripOnRandomUnicodeIsNfc) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 3000; ++i) {
    std::string s = RandomUnicode(rng);
    std::string nfc = ReferenceNfc(s);
    ASSERT_EQ(tok().Decode(tok().Encode(s)), NfcBetweenAddedTokens(s)) << "case " << i;
    // The quick check may only say "already NFC" when it is.
    if (tok::IsKnownNfc(s)) ASSERT_EQ(nfc, s) << "case " << i;
    ASSERT_EQ(tok::NormalizeNfc(s), nfc) << "case " << i;
  }
}

TEST(GenerationConfig, StopIdsAreTheEosList) {
  auto g = LoadGenerationConfig(FixtureDir("qwen3-tiny"));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->eos_token_ids, (std::vector<int64_t>{151645, 151643}));
}

TEST(TokenizerLoad, MissingOrUnsupportedFilesAreErrors) {
  auto missing = Tokenizer::Load("/nonexistent");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(Tokenizer::FromJson("{").ok());
  // A key of the wrong type: json::value throws, FromJson answers.
  for (const char* wrong_type : {R"({"model": []})", R"({"model": {"type": 1}})"}) {
    EXPECT_EQ(Tokenizer::FromJson(wrong_type).status().code(), absl::StatusCode::kInvalidArgument)
        << wrong_type;
  }
  auto wordpiece = Tokenizer::FromJson(R"({"model": {"type": "WordPiece"}})");
  EXPECT_EQ(wordpiece.status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace lp
