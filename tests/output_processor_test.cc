// The output processor (text deltas, stop strings, finish reasons, usage) and the stop-string
// matcher under it, without a server: tokens are fed as the scheduler would deliver them.
#include "coordinator/output_processor.h"

#include <gtest/gtest.h>

#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/stop_matcher.h"
#include "fixture_tokenizer.h"
#include "fixture_util.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;
using lp::testing::FixtureTokenizer;

class OutputProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(FixtureTokenizer(), nullptr) << "qwen3-tiny's tokenizer"; }
  static const Tokenizer* tok() { return FixtureTokenizer(); }
  // The token of one raw byte (every byte has one in a byte-level vocabulary).
  static int32_t ByteToken(unsigned char b) {
    std::string s;
    tok::AppendUtf8(tok::ByteToCodePoint(b), &s);
    return *FixtureTokenizer()->TokenId(s);
  }
  // `text` spelled one byte a token.
  static std::vector<SampledToken> Bytes(const std::string& text) {
    std::vector<SampledToken> out;
    for (unsigned char c : text) out.push_back({0, ByteToken(c)});
    return out;
  }
  static OutputProcessor Make(std::vector<std::string> stops = {}, std::set<int32_t> ids = {}) {
    auto p = OutputProcessor::Create(tok(), std::move(stops), std::move(ids), 7);
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }
};

TEST_F(OutputProcessorTest, MultiByteCharacterSplitAcrossTokensIsHeldUntilComplete) {
  OutputProcessor p = Make();
  const auto tokens = Bytes(std::string("a") + "\xF0\x9F\x98\x80" + "b");  // 😀: 4 tokens
  std::vector<std::string> deltas;
  for (const auto& t : tokens) {
    OutputDelta d = p.Add({&t, 1}, false, FinishReason::kNone);
    EXPECT_EQ(d.n_tokens, 1u);
    EXPECT_FALSE(d.finished);
    deltas.push_back(d.text);
  }
  EXPECT_EQ(deltas, (std::vector<std::string>{"a", "", "", "", "\xF0\x9F\x98\x80", "b"}));
  OutputDelta end = p.Add({}, true, FinishReason::kLength);
  EXPECT_TRUE(end.finished);
  EXPECT_EQ(end.text, "");
  EXPECT_EQ(end.finish_reason, FinishReason::kLength);
  EXPECT_EQ(p.usage().prompt_tokens, 7);
  EXPECT_EQ(p.usage().completion_tokens, 6);
}

TEST_F(OutputProcessorTest, UnfinishedCharacterAtTheEndBecomesReplacementCharacter) {
  OutputProcessor p = Make();
  const auto tokens = Bytes("x\xE4\xBD");  // 你 is E4 BD A0: cut short
  OutputDelta d = p.Add(tokens, false, FinishReason::kNone);
  EXPECT_EQ(d.text, "x");
  OutputDelta end = p.Add({}, true, FinishReason::kLength);
  EXPECT_EQ(end.text, "\xEF\xBF\xBD");  // U+FFFD
}

TEST_F(OutputProcessorTest, StopStringSpanningTokensEndsTheOutputBeforeIt) {
  OutputProcessor p = Make({"STOP"});
  const auto tokens = Bytes("ab STOP cd");
  std::string text;
  size_t fed = 0;
  OutputDelta d;
  for (; fed < tokens.size() && !d.finished; ++fed) {
    d = p.Add({&tokens[fed], 1}, false, FinishReason::kNone);
    EXPECT_EQ(d.n_tokens, 1u);
    text += d.text;
  }
  EXPECT_TRUE(d.finished);  // before the scheduler: the caller cancels the request
  EXPECT_EQ(d.finish_reason, FinishReason::kStop);
  EXPECT_EQ(fed, 7u);      // "ab STOP": the token that completed the stop string counts
  EXPECT_EQ(text, "ab ");  // never any part of the stop string
  EXPECT_EQ(p.usage().completion_tokens, 7);
  EXPECT_TRUE(p.finished());
}

TEST_F(OutputProcessorTest, TokensAfterTheStopStringInOneBatchAreNotOutput) {
  OutputProcessor p = Make({"lo w"});
  const auto tokens = Bytes("hello world");
  // The scheduler finished the request too (max_tokens): the stop string still wins.
  OutputDelta d = p.Add(tokens, true, FinishReason::kLength);
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.n_tokens, 7u);  // "hello w"
  EXPECT_EQ(d.text, "hel");
  EXPECT_EQ(d.finish_reason, FinishReason::kStop);
  EXPECT_EQ(p.usage().completion_tokens, 7);
}

TEST_F(OutputProcessorTest, HeldBackPrefixOfAStopStringIsReleasedAtTheEnd) {
  OutputProcessor p = Make({"abc"});
  OutputDelta d = p.Add(Bytes("xab"), false, FinishReason::kNone);
  EXPECT_EQ(d.text, "x");  // "ab" could start "abc"
  OutputDelta end = p.Add({}, true, FinishReason::kLength);
  EXPECT_EQ(end.text, "ab");
  EXPECT_EQ(end.finish_reason, FinishReason::kLength);
}

TEST_F(OutputProcessorTest, StopTokenIsCountedButNotRendered) {
  const int32_t eos = ByteToken('!');
  OutputProcessor p = Make({}, {eos});
  auto tokens = Bytes("hi");
  tokens.push_back({0, eos});
  OutputDelta d = p.Add(tokens, true, FinishReason::kStop);
  EXPECT_EQ(d.n_tokens, 3u);
  EXPECT_EQ(d.text, "hi");
  EXPECT_EQ(d.finish_reason, FinishReason::kStop);
  EXPECT_EQ(p.usage().completion_tokens, 3);
}

TEST_F(OutputProcessorTest, SchedulerFinishReasonPassesThrough) {
  for (FinishReason r : {FinishReason::kLength, FinishReason::kStop}) {
    OutputProcessor p = Make({"zzz"});
    p.Add(Bytes("abc"), false, FinishReason::kNone);
    OutputDelta d = p.Add(Bytes("d"), true, r);
    EXPECT_TRUE(d.finished);
    EXPECT_EQ(d.finish_reason, r);
    EXPECT_EQ(d.text, "d");
    EXPECT_EQ(p.usage().completion_tokens, 4);
  }
}

TEST_F(OutputProcessorTest, AddAfterFinishedAcceptsNothing) {
  OutputProcessor p = Make({"b"});
  EXPECT_TRUE(p.Add(Bytes("ab"), false, FinishReason::kNone).finished);
  OutputDelta again = p.Add(Bytes("cd"), true, FinishReason::kLength);
  EXPECT_EQ(again.n_tokens, 0u);
  EXPECT_EQ(again.text, "");
  EXPECT_EQ(p.usage().completion_tokens, 2);
}

TEST(OutputProcessorNoTokenizer, CountsTokensWithoutText) {
  auto p = OutputProcessor::Create(nullptr, {}, {}, 3);
  ASSERT_TRUE(p.ok());
  std::vector<SampledToken> tokens = {{0, 5}, {0, 6}};
  OutputDelta d = p->Add(tokens, true, FinishReason::kLength);
  EXPECT_EQ(d.n_tokens, 2u);
  EXPECT_EQ(d.text, "");
  EXPECT_EQ(d.finish_reason, FinishReason::kLength);
  EXPECT_EQ(p->usage().prompt_tokens, 3);
  EXPECT_EQ(p->usage().completion_tokens, 2);
}

TEST(OutputProcessorNoTokenizer, StopStringsNeedATokenizer) {
  auto p = OutputProcessor::Create(nullptr, {"x"}, {}, 3);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StopMatcher, ReleasesTextThatCannotStartAStopString) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Feed("hello E"), "hello ");
  EXPECT_EQ(m.Feed("N"), "");
  EXPECT_EQ(m.Feed("x"), "ENx");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcher, StopsAtTheEarliestStopString) {
  StopMatcher m({"world", "lo"});
  EXPECT_EQ(m.Feed("hello world"), "hel");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Feed("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcher, StopStringSplitOverManyFeeds) {
  StopMatcher m({"<|end|>"});
  std::string out;
  for (char c : std::string("ok<|end|>tail")) out += m.Feed(std::string(1, c));
  EXPECT_EQ(out, "ok");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, FlushReturnsTheHeldTail) {
  StopMatcher m({"abc", "abd"});
  EXPECT_EQ(m.Feed("xxab"), "xx");
  EXPECT_EQ(m.Flush(), "ab");
}

TEST(StopMatcher, EmptyStopStringsAreIgnored) {
  StopMatcher m({""});
  EXPECT_EQ(m.Feed("abc"), "abc");
  EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace lp
