// PCRE2-based Split pre-tokenizer (see pretokenizer.h).
#include "common/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"

namespace lp::tok {
namespace {

// Unicode's White_Space property, which `tokenizers`' regex engine (Oniguruma) means by \s.
// PCRE2's \s also takes U+180E (Mongolian vowel separator, no longer a space since Unicode 6.3).
constexpr char kWhiteSpace[] =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Writes \s and \S of an Oniguruma pattern as explicit classes of kWhiteSpace, so that PCRE2
// splits exactly where the reference does. \S inside a class has no such rewriting and is left.
std::string SpellOutWhiteSpace(const std::string& pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : absl::StrCat("[", kWhiteSpace, "]");
      } else if (e == 'S' && !in_class) {
        out += absl::StrCat("[^", kWhiteSpace, "]");
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

struct Pretokenizer::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

Pretokenizer::~Pretokenizer() = default;

absl::StatusOr<std::unique_ptr<Pretokenizer>> Pretokenizer::Create(
    const std::string& onig_pattern) {
  const std::string pattern = SpellOutWhiteSpace(onig_pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("pre-tokenizer regex does not compile at ",
                                                   offset, ": ",
                                                   reinterpret_cast<const char*>(message)));
  }
  std::unique_ptr<Pretokenizer> p(new Pretokenizer);
  p->impl_ = std::make_unique<Impl>();
  p->impl_->code = code;
  // Without JIT (a platform PCRE2 lacks it for) the interpreter gives the same pieces, slower.
  p->impl_->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return p;
}

void Pretokenizer::Split(std::string_view text,
                         absl::FunctionRef<void(std::string_view)> piece) const {
  // One match-data block per call keeps Split thread-safe; it is small and reused per match.
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  // The JIT's default 32 KiB stack can run out on very long runs; a larger one is made only then.
  std::unique_ptr<pcre2_jit_stack, decltype(&pcre2_jit_stack_free)> stack(nullptr,
                                                                          &pcre2_jit_stack_free);
  std::unique_ptr<pcre2_match_context, decltype(&pcre2_match_context_free)> ctx(
      nullptr, &pcre2_match_context_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, gap_start = 0;
  while (pos < text.size()) {
    int rc = impl_->jit
                 ? pcre2_jit_match(impl_->code, subject, text.size(), pos, 0, md.get(), ctx.get())
                 : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(),
                               ctx.get());
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !stack) {
      stack.reset(pcre2_jit_stack_create(64 << 10, 64 << 20, nullptr));
      ctx.reset(pcre2_match_context_create(nullptr));
      pcre2_jit_stack_assign(ctx.get(), nullptr, stack.get());
      continue;
    }
    if (rc < 0) break;  // no further match (or a resource limit): the rest is one gap
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t begin = ov[0], end = ov[1];
    if (end == begin) {
      // An empty match cuts nothing: step over one character and search again.
      pos = begin + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (begin > gap_start) piece(text.substr(gap_start, begin - gap_start));
    piece(text.substr(begin, end - begin));
    pos = gap_start = end;
  }
  if (gap_start < text.size()) piece(text.substr(gap_start));
}

}  // namespace lp::tok
