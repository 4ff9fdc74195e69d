// GPT-2 byte-level alphabet and lossy UTF-8 conversion (see byte_level.h).
#include "common/tokenizer/byte_level.h"

#include <array>

namespace lp::tok {
namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
// take code points 256, 257, ... in byte order.
struct Alphabet {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 324> from_cp{};  // code point -> byte, -1 if none; 256 + 68 = 324
  Alphabet() {
    from_cp.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[b] = printable ? char32_t(b) : char32_t(next++);
      from_cp[to_cp[b]] = int16_t(b);
    }
  }
};

const Alphabet& GetAlphabet() {
  static const Alphabet alphabet;
  return alphabet;
}

// Decodes one UTF-8 code point from the front of `s` (assumed valid), advancing `*i`.
char32_t NextCodePoint(std::string_view s, size_t* i) {
  size_t incomplete_unused = 0;
  bool incomplete = false;
  size_t n = Utf8CharLength(s.substr(*i), &incomplete, &incomplete_unused);
  if (n == 0) return char32_t(-1);
  auto u = [&](size_t k) { return char32_t(static_cast<unsigned char>(s[*i + k])); };
  char32_t cp = n == 1   ? u(0)
                : n == 2 ? ((u(0) & 0x1F) << 6) | (u(1) & 0x3F)
                : n == 3 ? ((u(0) & 0x0F) << 12) | ((u(1) & 0x3F) << 6) | (u(2) & 0x3F)
                         : ((u(0) & 0x07) << 18) | ((u(1) & 0x3F) << 12) | ((u(2) & 0x3F) << 6) |
                               (u(3) & 0x3F);
  *i += n;
  return cp;
}

}  // namespace

char32_t ByteToCodePoint(unsigned char byte) { return GetAlphabet().to_cp[byte]; }

std::optional<std::string> ByteLevelToBytes(std::string_view token) {
  const Alphabet& a = GetAlphabet();
  std::string out;
  out.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    char32_t cp = NextCodePoint(token, &i);
    if (cp >= a.from_cp.size() || a.from_cp[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(a.from_cp[cp]));
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(char(cp));
  } else if (cp < 0x800) {
    out->push_back(char(0xC0 | (cp >> 6)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(char(0xE0 | (cp >> 12)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(char(0xF0 | (cp >> 18)));
    out->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  }
}

size_t Utf8CharLength(std::string_view s, bool* incomplete, size_t* invalid_len) {
  *incomplete = false;
  *invalid_len = 1;
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // range allowed for the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (k >= s.size()) {
      *incomplete = true;
      *invalid_len = k;
      return 0;
    }
    unsigned char lo_k = k == 1 ? lo : 0x80, hi_k = k == 1 ? hi : 0xBF;
    if (b(k) < lo_k || b(k) > hi_k) {
      *invalid_len = k;
      return 0;
    }
  }
  return need;
}

size_t AppendUtf8Lossy(std::string_view bytes, bool hold_incomplete, std::string* out) {
  size_t i = 0;
  while (i < bytes.size()) {
    // Runs of ASCII are the common case: copy them in one go.
    size_t j = i;
    while (j < bytes.size() && static_cast<unsigned char>(bytes[j]) < 0x80) ++j;
    out->append(bytes.data() + i, j - i);
    i = j;
    if (i == bytes.size()) break;
    bool incomplete = false;
    size_t invalid_len = 0;
    size_t n = Utf8CharLength(bytes.substr(i), &incomplete, &invalid_len);
    if (n > 0) {
      out->append(bytes.data() + i, n);
      i += n;
    } else if (incomplete && hold_incomplete) {
      return i;
    } else {
      out->append("\xEF\xBF\xBD");  // U+FFFD
      i += invalid_len;
    }
  }
  return i;
}

}  // namespace lp::tok
