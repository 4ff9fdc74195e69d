// NFC normalization with a quick check (see normalizer.h).
#include "common/tokenizer/normalizer.h"

#include <cstdlib>
#include <memory>

#include "common/tokenizer/byte_level.h"
#include "utf8proc.h"

namespace lp::tok {
namespace {

// A code point that NFC keeps as is whatever stands around it, provided its neighbours are
// such code points too: a starter (combining class 0) with no canonical decomposition that
// never composes with a preceding character.
bool IsStableStarter(char32_t cp) {
  if (cp < 0x300) return true;  // Latin-1 and friends: NFC_Quick_Check=Yes, class 0
  if (cp >= 0x1161 && cp <= 0x11C2) return false;  // Hangul vowel/trailing jamo compose
  const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(cp));
  if (p->combining_class != 0) return false;
  // Canonical decompositions (decomp_type 0) may change; compatibility ones are not NFC's.
  if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) return false;
  // utf8proc marks characters that can be the second of a composed pair with bit 15.
  if (p->comb_index != UINT16_MAX && (p->comb_index & 0x8000)) return false;
  return true;
}

}  // namespace

bool IsKnownNfc(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size(), i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    bool incomplete = false;
    size_t invalid_len = 0;
    size_t len = Utf8CharLength(text.substr(i), &incomplete, &invalid_len);
    if (len == 0) return false;
    char32_t cp = len == 2 ? ((s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F)
                  : len == 3
                      ? ((s[i] & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F)
                      : ((s[i] & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) |
                            ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
    if (!IsStableStarter(cp)) return false;
    i += len;
  }
  return true;
}

std::string NormalizeNfc(std::string_view text) {
  if (IsKnownNfc(text)) return std::string(text);
  std::string valid;
  AppendUtf8Lossy(text, /*hold_incomplete=*/false, &valid);
  // utf8proc_map with an explicit length, not utf8proc_NFC: the text may hold NUL bytes.
  utf8proc_uint8_t* nfc = nullptr;
  utf8proc_ssize_t len =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
                   utf8proc_ssize_t(valid.size()), &nfc, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (len < 0) return valid;  // only on allocation failure; keep the text usable
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(nfc, &std::free);
  return std::string(reinterpret_cast<const char*>(nfc), size_t(len));
}

}  // namespace lp::tok
