// Chat rendering against Qwen3's own Jinja template (tests/fixtures/chat_cases.json, rendered
// by tools/make_chat_cases.py as `transformers` renders it) and the reference's chat_example ids.
#include "common/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "common/tokenizer/tokenizer.h"
#include "fixture_util.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;

TEST(ChatTemplate, ChatExampleRendersAndEncodesExactly) {
  auto j = lp::testing::LoadJson(FixtureDir("tokenizer_cases.json"))["chat_example"];
  auto text = RenderChat({{"system", "You are helpful."}, {"user", "What is 2+2?"}},
                         /*add_generation_prompt=*/true, /*enable_thinking=*/true);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, j["rendered"].get<std::string>());
  auto tokenizer = Tokenizer::Load(FixtureDir("qwen3-tiny"));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->Encode(*text), j["ids"].get<std::vector<int32_t>>());
}

TEST(ChatTemplate, MatchesTheJinjaTemplateOnEveryCase) {
  auto tmpl = ChatTemplate::Load(FixtureDir("qwen3-tiny"));
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  EXPECT_EQ(tmpl->flavor(), ChatTemplate::Flavor::kQwen3);
  auto j = lp::testing::LoadJson(FixtureDir("chat_cases.json"));
  ASSERT_GE(j["cases"].size(), 60u);
  for (const auto& c : j["cases"]) {
    std::vector<ChatMessage> messages;
    for (const auto& m : c["messages"]) messages.push_back({m["role"], m["content"]});
    auto text = tmpl->Render(messages, c["add_generation_prompt"], c["enable_thinking"]);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, c["rendered"].get<std::string>())
        << c["name"] << " add_generation_prompt=" << c["add_generation_prompt"]
        << " enable_thinking=" << c["enable_thinking"];
  }
}

TEST(ChatTemplate, ThinkingOffAppendsAnEmptyThinkBlock) {
  auto text = RenderChat({{"user", "hi"}}, true, /*enable_thinking=*/false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, ToolsAndUnknownRolesAreRejected) {
  EXPECT_FALSE(RenderChat({{"tool", "42"}}, true, true).ok());
  EXPECT_FALSE(RenderChat({{"narrator", "x"}}, true, true).ok());
  EXPECT_FALSE(RenderChat({}, true, true).ok());
}

TEST(ChatTemplate, Qwen2TemplatesGetTheirDefaultSystemMessage) {
  // The Qwen2.5 template's non-tool branch, as tokenizer_config.json stores it.
  const std::string qwen25 =
      "{%- if messages[0]['role'] == 'system' %}\n    {{- '<|im_start|>system\\n' + "
      "messages[0]['content'] + '<|im_end|>\\n' }}\n{%- else %}\n    {{- "
      "'<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
      "assistant.<|im_end|>\\n' }}\n{%- endif %}";
  ChatTemplate t = ChatTemplate::FromTemplateText(qwen25);
  EXPECT_EQ(t.flavor(), ChatTemplate::Flavor::kChatMl);
  auto text = t.Render({{"user", "hi"}}, true, /*enable_thinking=*/false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  auto with_system = t.Render({{"system", "S"}, {"user", "hi"}}, false, true);
  EXPECT_EQ(*with_system, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n");
}

}  // namespace
}  // namespace lp
