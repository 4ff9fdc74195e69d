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

// Decodes the character at text[i]: its code point and length, or length 0 for bytes that are
// not UTF-8 (then `*bad_len` bytes are to be replaced).
char32_t DecodeAt(std::string_view text, size_t i, size_t* len, size_t* bad_len) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + i;
  if (s[0] < 0x80) {
    *len = 1;
    return s[0];
  }
  bool incomplete = false;
  *len = Utf8CharLength(text.substr(i), &incomplete, bad_len);
  switch (*len) {
    case 2:
      return ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3:
      return ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    case 4:
      return ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    default:
      return 0;
  }
}

// Valid UTF-8 in NFC for a short stretch (any bytes).
void AppendNfc(std::string_view text, std::string* out) {
  std::string valid;
  AppendUtf8Lossy(text, /*hold_incomplete=*/false, &valid);
  // utf8proc_map with an explicit length, not utf8proc_NFC: the text may hold NUL bytes.
  utf8proc_uint8_t* nfc = nullptr;
  utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
                                      utf8proc_ssize_t(valid.size()), &nfc,
                                      utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (len < 0) {  // only on allocation failure; keep the text usable
    out->append(valid);
    return;
  }
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(nfc, &std::free);
  out->append(reinterpret_cast<const char*>(nfc), size_t(len));
}

}  // namespace

bool IsKnownNfc(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0, len = 0, bad_len = 0;
  while (i < text.size()) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    char32_t cp = DecodeAt(text, i, &len, &bad_len);
    if (len == 0 || !IsStableStarter(cp)) return false;
    i += len;
  }
  return true;
}

// NFC is local: nothing crosses a stable starter (it neither decomposes nor composes with what
// precedes it, and reordering stops at starters). So only the stretch from the last stable
// starter before a doubtful character to the next stable starter after it goes through utf8proc;
// the rest is copied.
std::string NormalizeNfc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t copied = 0, last_stable = 0, i = 0, len = 0, bad_len = 0;
  while (i < text.size()) {
    char32_t cp = DecodeAt(text, i, &len, &bad_len);
    if (len > 0 && IsStableStarter(cp)) {
      last_stable = i;
      i += len;
      continue;
    }
    size_t end = i + (len > 0 ? len : bad_len);
    while (end < text.size()) {
      cp = DecodeAt(text, end, &len, &bad_len);
      if (len > 0 && IsStableStarter(cp)) break;
      end += len > 0 ? len : bad_len;
    }
    out.append(text.substr(copied, last_stable - copied));
    AppendNfc(text.substr(last_stable, end - last_stable), &out);
    copied = last_stable = i = end;
  }
  out.append(text.substr(copied));
  return out;
}

}  // namespace lp::tok
