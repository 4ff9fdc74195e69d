// PCRE2-based Split pre-tokenizer (see pretokenizer.h).
#include "common/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"

namespace lp::tok {

struct Pretokenizer::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

Pretokenizer::~Pretokenizer() = default;

absl::StatusOr<std::unique_ptr<Pretokenizer>> Pretokenizer::Create(const std::string& pattern) {
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
    int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), pos, 0, md.get(),
                                          ctx.get())
                        : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK,
                                      md.get(), ctx.get());
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
