// Chat prompts in ChatML, rendered as the model's own Jinja chat template (tokenizer_config.json)
// renders them for `system` / `user` / `assistant` messages, without a Jinja engine:
//   - Qwen3 (the template mentions <think>): an assistant turn before the last user message
//     loses its <think>...</think> reasoning; one after it keeps it in a <think> block; with
//     enable_thinking=false the generation prompt is followed by an empty <think>\n\n</think>\n\n.
//   - Qwen2 / Qwen2.5 (plain ChatML): a default system message when the first is not a system
//     one, taken from the template ("You are a helpful assistant.", "You are Qwen, ...").
// Tools (tool messages, tool calls, the tools list) are out of scope: a `tool` role is an error.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lp {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Flavor { kQwen3, kChatMl };

  // Picks the flavor from `model_dir`/tokenizer_config.json's chat_template.
  static absl::StatusOr<ChatTemplate> Load(const std::string& model_dir);
  // The same from the template text.
  static ChatTemplate FromTemplateText(const std::string& jinja);
  static ChatTemplate Qwen3() { return ChatTemplate(Flavor::kQwen3, ""); }

  // The prompt text (special tokens written out, to be encoded with Tokenizer::Encode).
  // Errors: no messages, or a role other than system / user / assistant.
  absl::StatusOr<std::string> Render(const std::vector<ChatMessage>& messages,
                                     bool add_generation_prompt, bool enable_thinking) const;

  Flavor flavor() const { return flavor_; }
  const std::string& default_system() const { return default_system_; }

 private:
  ChatTemplate(Flavor flavor, std::string default_system)
      : flavor_(flavor), default_system_(std::move(default_system)) {}
  std::string RenderQwen3(const std::vector<ChatMessage>& messages) const;
  std::string RenderChatMl(const std::vector<ChatMessage>& messages) const;

  Flavor flavor_;
  std::string default_system_;  // kChatMl: used when the first message is not a system one
};

// Qwen3's rendering: ChatTemplate::Qwen3().Render(...).
absl::StatusOr<std::string> RenderChat(const std::vector<ChatMessage>& messages,
                                       bool add_generation_prompt, bool enable_thinking);

}  // namespace lp
