// Fuzz target: the chat renderer (ChatTemplate::Render) for both flavors. The input's first
// byte holds the switches; the rest, split at NUL bytes, is a template text (whose default
// system message the ChatML flavor picks up) and then the messages, each a role byte and its
// content.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (8 << 10)) return 0;
  const uint8_t flags = data[0];
  std::vector<std::string_view> parts;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  for (size_t nul; (nul = rest.find('\0')) != std::string_view::npos;) {
    parts.push_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  parts.push_back(rest);
  const lp::ChatTemplate chat = flags & 4
                                    ? lp::ChatTemplate::FromTemplateText(std::string(parts[0]))
                                    : lp::ChatTemplate::Qwen3();
  static const char* const kRoles[] = {"system", "user", "assistant", "tool", ""};
  std::vector<lp::ChatMessage> messages;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string_view m = parts[i];
    const char* role = m.empty() ? "user" : kRoles[uint8_t(m[0]) % 5];
    messages.push_back({role, std::string(m.empty() ? m : m.substr(1))});
  }
  auto text = chat.Render(messages, flags & 1, flags & 2);
  if (text.ok() && text->empty()) std::abort();  // a chat renders at least its turns
  return 0;
}
