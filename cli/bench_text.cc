// Deterministic mixed text for tokenizer benchmarks (see bench_text.h).
#include "cli/bench_text.h"

#include <array>
#include <string_view>
#include <vector>

#include "common/random.h"

namespace lp::cli {
namespace {

// A small deterministic generator (SplitMix64): the text must not depend on the C++ library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return Mix64(state_ += kSplitMixGamma); }
  size_t Below(size_t n) { return size_t(Next() % n); }
  template <typename T, size_t N>
  const T& Pick(const std::array<T, N>& a) {
    return a[Below(N)];
  }

 private:
  uint64_t state_;
};

constexpr std::array<std::string_view, 48> kWords = {
    "the",     "model",  "is",     "split",  "by",      "layers",      "across", "several",
    "workers", "and",    "each",   "one",    "holds",   "its",         "own",    "cache",
    "of",      "keys",   "values", "while",  "a",       "coordinator", "chains", "activations",
    "through", "them",   "don't",  "it's",   "we've",   "they'll",     "I'm",    "throughput",
    "latency", "tokens", "per",    "second", "Because", "However",     "naïve",  "café",
    "résumé",  "Zürich", "über",   "déjà",   "vu",      "pipeline",    "bubble", "GPU"};
constexpr std::array<std::string_view, 10> kCode = {
    "def encode(self, text: str) -> list[int]:\n    return self._bpe(text)\n",
    "for (size_t i = 0; i < n; ++i) {\n  out[i] = a[i] * b[i] + c;\n}\n",
    "if (!status.ok()) return status;  // propagate\n",
    "    x = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d)\n",
    "#include <vector>\n#include \"absl/status/status.h\"\n",
    "const std::string path = dir + \"/tokenizer.json\";\n",
    "\tSELECT id, name FROM users WHERE age >= 18 ORDER BY name;\n",
    "{\"ids\": [151644, 872, 198], \"text\": \"hi\"}\n",
    "        elif x == 0x7fffffff and y != -1:\n            raise ValueError(f'bad {x!r}')\n",
    "https://example.com/api/v1/generate?model=qwen3&max_tokens=256\n"};
// Characters drawn at random make CJK runs (one long piece each: no spaces) that rarely repeat.
constexpr std::string_view kHanzi =
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子"
    "说产"
    "种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使"
    "点从"
    "业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看"
    "原又"
    "么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员"
    "革位"
    "入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区"
    "强放"
    "决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极"
    "交受";
constexpr std::string_view kKana =
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲン";
constexpr std::array<std::string_view, 4> kOther = {
    "Привет, мир! Это проверка токенизатора.", "مرحبا بالعالم، هذا اختبار.",
    "Ελληνικά κείμενα και ακόμα περισσότερα.", "Tiếng Việt có dấu: người, được, những."};
constexpr std::array<std::string_view, 10> kEmoji = {
    "😀", "👍🏽", "👨‍👩‍👧", "🚀", "❤️", "🇯🇵", "🧑🏿‍💻",
    "✨", "🤖",     "👩‍🔬"};
constexpr std::array<std::string_view, 6> kSpace = {"  ",   "    ",    "\t\t",
                                                    "\n\n", " \n  \n", "        "};

// n random 3-byte characters (CJK, kana) from `pool`.
void AppendChars(Rng& rng, std::string_view pool, size_t n, std::string* out) {
  for (size_t i = 0; i < n; ++i) out->append(pool.substr(3 * rng.Below(pool.size() / 3), 3));
}

void AppendCjk(Rng& rng, std::string* out) {
  switch (rng.Below(3)) {
    case 0:
      AppendChars(rng, kHanzi, 4 + rng.Below(12), out);
      out->append("，");
      AppendChars(rng, kHanzi, 4 + rng.Below(12), out);
      out->append("。");
      break;
    case 1:
      AppendChars(rng, kHanzi, 1 + rng.Below(3), out);
      AppendChars(rng, kKana, 2 + rng.Below(8), out);
      out->append("。");
      break;
    default:  // Hangul syllables U+AC00..U+D7A3, words of 2-4
      for (size_t w = 0, n = 2 + rng.Below(5); w < n; ++w) {
        for (size_t c = 0, m = 2 + rng.Below(3); c < m; ++c) {
          char32_t cp = 0xAC00 + char32_t(rng.Below(11172));
          out->push_back(char(0xE0 | (cp >> 12)));
          out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
          out->push_back(char(0x80 | (cp & 0x3F)));
        }
        out->push_back(' ');
      }
  }
}

void AppendProse(Rng& rng, std::string* out) {
  size_t words = 6 + rng.Below(14);
  for (size_t w = 0; w < words; ++w) {
    if (w > 0) out->push_back(' ');
    if (rng.Below(7) == 0) {  // a rare or made-up word, so that not every word is cached
      for (size_t c = 0, n = 3 + rng.Below(10); c < n; ++c)
        out->push_back(char('a' + rng.Below(26)));
    } else {
      out->append(rng.Pick(kWords));
    }
    if (rng.Below(12) == 0) out->push_back(',');
  }
  out->append(rng.Below(5) == 0 ? "? " : ". ");
}

void AppendNumber(Rng& rng, std::string* out) {
  switch (rng.Below(3)) {
    case 0:
      out->append(std::to_string(rng.Next() % 1000000007));
      break;
    case 1:
      out->append(std::to_string(rng.Below(100)) + "." + std::to_string(rng.Below(100000)));
      break;
    default:
      out->append("2026-" + std::to_string(1 + rng.Below(12)) + "-" +
                  std::to_string(1 + rng.Below(28)));
  }
  out->push_back(' ');
}

}  // namespace

std::string MakeBenchText(size_t bytes, uint64_t seed) {
  Rng rng(seed);
  std::string out;
  out.reserve(bytes + 256);
  while (out.size() < bytes) {
    size_t kind = rng.Below(100);
    if (kind < 45) {
      AppendProse(rng, &out);
    } else if (kind < 60) {
      out.append(rng.Pick(kCode));
    } else if (kind < 74) {
      AppendCjk(rng, &out);
    } else if (kind < 78) {
      out.append(rng.Pick(kOther));
    } else if (kind < 85) {
      out.append(rng.Pick(kEmoji));
      if (rng.Below(2) == 0) out.push_back(' ');
    } else if (kind < 93) {
      AppendNumber(rng, &out);
    } else {
      out.append(rng.Pick(kSpace));
    }
  }
  // Cut at a character boundary so that the text stays valid UTF-8.
  size_t end = bytes;
  while (end > 0 && (static_cast<unsigned char>(out[end]) & 0xC0) == 0x80) --end;
  out.resize(end);
  return out;
}

}  // namespace lp::cli
