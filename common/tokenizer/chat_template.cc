// ChatML rendering that reproduces Qwen's Jinja chat templates (see chat_template.h).
#include "common/tokenizer/chat_template.h"

#include <fstream>
#include <sstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"

namespace lp {
namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";

// Python's str.lstrip / rstrip / strip with the argument '\n', as the template calls them.
std::string_view LStripNewlines(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view RStripNewlines(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

// Qwen3's template: the index of the last user message that is not a wrapped tool response
// (or the last index when there is none).
size_t LastQueryIndex(const std::vector<ChatMessage>& messages) {
  for (size_t i = messages.size(); i-- > 0;) {
    const std::string& c = messages[i].content;
    bool tool_response = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (messages[i].role == "user" && !tool_response) return i;
  }
  return messages.size() - 1;
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Load(const std::string& model_dir) {
  std::string path = model_dir + "/tokenizer_config.json";
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("chat_template") || !j["chat_template"].is_string()) {
    return absl::NotFoundError(absl::StrCat(path, ": no chat_template"));
  }
  return FromTemplateText(j["chat_template"].get<std::string>());
}

ChatTemplate ChatTemplate::FromTemplateText(const std::string& jinja) {
  if (jinja.find(kThinkOpen) != std::string::npos) return Qwen3();
  // Qwen2 writes its default system turn as one literal: '<|im_start|>system\n...<|im_end|>\n'.
  // (The template's own "\n" escapes are two characters in the text.)
  const std::string_view open = "<|im_start|>system\\n";
  std::string default_system;
  for (size_t at = jinja.find(open); at != std::string::npos; at = jinja.find(open, at + 1)) {
    size_t begin = at + open.size();
    if (begin < jinja.size() && (jinja[begin] == '\'' || jinja[begin] == '"')) continue;
    size_t end = jinja.find("<|im_end|>", begin);
    if (end == std::string::npos) break;
    default_system = absl::StrReplaceAll(jinja.substr(begin, end - begin), {{"\\n", "\n"}});
    break;
  }
  return ChatTemplate(Flavor::kChatMl, std::move(default_system));
}

absl::StatusOr<std::string> ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                                 bool add_generation_prompt,
                                                 bool enable_thinking) const {
  if (messages.empty()) return absl::InvalidArgumentError("a chat needs at least one message");
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat(
          "chat role '", m.role, "' is not supported (system, user and assistant are)"));
    }
  }
  std::string out = flavor_ == Flavor::kQwen3 ? RenderQwen3(messages) : RenderChatMl(messages);
  if (add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (flavor_ == Flavor::kQwen3 && !enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

std::string ChatTemplate::RenderQwen3(const std::vector<ChatMessage>& messages) const {
  std::string out;
  const size_t last_query = LastQueryIndex(messages);
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role != "assistant") {
      // A system message is a turn like a user one (the first is the same text at the top).
      out += absl::StrCat("<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
      continue;
    }
    std::string_view content = m.content, reasoning;
    if (size_t close = content.rfind(kThinkClose); close != std::string_view::npos) {
      // content.split('</think>')[-1].lstrip('\n'), and the reasoning before the first
      // '</think>', after the last '<think>' before it.
      std::string_view before = content.substr(0, content.find(kThinkClose));
      before = RStripNewlines(before);
      if (size_t open = before.rfind(kThinkOpen); open != std::string_view::npos) {
        before = before.substr(open + kThinkOpen.size());
      }
      reasoning = LStripNewlines(before);
      content = LStripNewlines(content.substr(close + kThinkClose.size()));
    }
    bool last = i + 1 == messages.size();
    out += "<|im_start|>assistant\n";
    if (i > last_query && (last || !reasoning.empty())) {
      out += "<think>\n";
      out += RStripNewlines(LStripNewlines(reasoning));
      out += "\n</think>\n\n";
      out += LStripNewlines(content);
    } else {
      out += content;
    }
    out += "<|im_end|>\n";
  }
  return out;
}

std::string ChatTemplate::RenderChatMl(const std::vector<ChatMessage>& messages) const {
  std::string out;
  if (messages[0].role != "system" && !default_system_.empty()) {
    out += absl::StrCat("<|im_start|>system\n", default_system_, "<|im_end|>\n");
  }
  for (const ChatMessage& m : messages) {
    out += absl::StrCat("<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
  }
  return out;
}

absl::StatusOr<std::string> RenderChat(const std::vector<ChatMessage>& messages,
                                       bool add_generation_prompt, bool enable_thinking) {
  return ChatTemplate::Qwen3().Render(messages, add_generation_prompt, enable_thinking);
}

}  // namespace lp
