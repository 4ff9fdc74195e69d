// ValidateGenerate without a server: every bad input is INVALID_ARGUMENT with a message that
// says what is wrong, and a good request's unset fields get their defaults.
#include "coordinator/request_validation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

namespace lp {
namespace {

using layerpipe::v1::GenerateRequest;

const ValidationContext kCtx{/*vocab_size=*/100, /*max_context=*/16, /*eos_ids=*/{99}};
const std::vector<int32_t> kPrompt = {1, 2, 3, 4};

TEST(ValidateGenerate, DefaultsForAnEmptyRequest) {
  auto p = ValidateGenerate(GenerateRequest(), kPrompt, kCtx, 1234);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->max_tokens, 12);  // all the room the context leaves
  EXPECT_EQ(p->stop_ids, (std::set<int32_t>{99}));
  EXPECT_EQ(p->sampling.temperature, 0.0f);
  EXPECT_EQ(p->sampling.top_p, 1.0f);
  EXPECT_EQ(p->sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(p->sampling.seed, 1234u);
}

TEST(ValidateGenerate, RequestFieldsAreKept) {
  GenerateRequest r;
  r.set_max_tokens(12);
  r.set_temperature(0.7f);
  r.set_top_k(5);
  r.set_top_p(0.9f);
  r.set_min_p(0.05f);
  r.set_repetition_penalty(1.1f);
  r.set_seed(7);
  r.set_logprobs(kMaxLogprobs);
  r.add_stop_token_ids(42);
  r.set_ignore_eos(true);
  auto p = ValidateGenerate(r, kPrompt, kCtx, 1234);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->max_tokens, 12);
  EXPECT_EQ(p->stop_ids, (std::set<int32_t>{42}));
  EXPECT_EQ(p->sampling.top_k, 5);
  EXPECT_FLOAT_EQ(p->sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(p->sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(p->sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(p->sampling.seed, 7u);
  EXPECT_EQ(p->sampling.logprobs, kMaxLogprobs);
}

struct BadCase {
  const char* name;
  std::vector<int32_t> prompt;
  std::function<void(GenerateRequest*)> set;
  const char* message;  // a part of the error message
};

TEST(ValidateGenerate, BadInputsAreInvalidArgument) {
  const auto none = [](GenerateRequest*) {};
  const std::vector<BadCase> cases = {
      {"empty prompt", {}, none, "the prompt is empty"},
      {"negative id", {1, -1}, none, "token id -1 is outside the vocabulary"},
      {"id past vocab", {1, 100}, none, "token id 100 is outside the vocabulary [0, 100)"},
      {"prompt fills the context", std::vector<int32_t>(16, 1), none, "the context limit is 16"},
      {"max_tokens 0", kPrompt, [](GenerateRequest* r) { r->set_max_tokens(0); },
       "max_tokens must be at least 1"},
      {"max_tokens past the context", kPrompt, [](GenerateRequest* r) { r->set_max_tokens(13); },
       "(at most 12)"},
      {"negative temperature", kPrompt, [](GenerateRequest* r) { r->set_temperature(-1); },
       "temperature must be >= 0"},
      {"NaN temperature", kPrompt, [](GenerateRequest* r) { r->set_temperature(NAN); },
       "temperature"},
      {"negative top_k", kPrompt, [](GenerateRequest* r) { r->set_top_k(-1); }, "top_k"},
      {"top_p 0", kPrompt, [](GenerateRequest* r) { r->set_top_p(0); }, "top_p must be in (0, 1]"},
      {"top_p above 1", kPrompt, [](GenerateRequest* r) { r->set_top_p(1.5f); }, "top_p"},
      {"min_p above 1", kPrompt, [](GenerateRequest* r) { r->set_min_p(2); }, "min_p"},
      {"repetition_penalty tiny", kPrompt,
       [](GenerateRequest* r) { r->set_repetition_penalty(0.001f); }, "repetition_penalty"},
      {"repetition_penalty huge", kPrompt,
       [](GenerateRequest* r) { r->set_repetition_penalty(101); }, "repetition_penalty"},
      {"repetition_penalty negative", kPrompt,
       [](GenerateRequest* r) { r->set_repetition_penalty(-1); }, "repetition_penalty"},
      {"too many logprobs", kPrompt, [](GenerateRequest* r) { r->set_logprobs(kMaxLogprobs + 1); },
       "logprobs must be in"},
      {"negative logprobs", kPrompt, [](GenerateRequest* r) { r->set_logprobs(-1); }, "logprobs"},
      {"too many stop strings", kPrompt,
       [](GenerateRequest* r) {
         for (int i = 0; i <= kMaxStopStrings; ++i) r->add_stop("s");
       },
       "stop strings"},
      {"empty stop string", kPrompt, [](GenerateRequest* r) { r->add_stop(""); },
       "a stop string must have"},
      {"long stop string", kPrompt,
       [](GenerateRequest* r) { r->add_stop(std::string(kMaxStopLength + 1, 'x')); },
       "a stop string must have"},
      {"stop token id past vocab", kPrompt, [](GenerateRequest* r) { r->add_stop_token_ids(100); },
       "stop token id 100"},
  };
  for (const auto& c : cases) {
    GenerateRequest r;
    c.set(&r);
    auto p = ValidateGenerate(r, c.prompt, kCtx, 1);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(p.status().message().find(c.message), std::string::npos)
        << c.name << ": " << p.status().message();
  }
}

TEST(ValidateGenerate, LimitsAreInclusive) {
  GenerateRequest r;
  r.set_top_p(1.0f);
  r.set_min_p(1.0f);
  r.set_repetition_penalty(100);
  r.add_stop(std::string(kMaxStopLength, 'x'));
  EXPECT_TRUE(ValidateGenerate(r, std::vector<int32_t>(15, 1), kCtx, 1).ok());
}

}  // namespace
}  // namespace lp
