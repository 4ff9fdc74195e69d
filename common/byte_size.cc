// Parsing and printing byte sizes.
#include "common/byte_size.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace lp {

absl::StatusOr<uint64_t> ParseByteSize(const std::string& text) {
  const std::string s(absl::StripAsciiWhitespace(text));
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  const std::string number = s.substr(0, i);
  const std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.substr(i)));
  auto bad = absl::InvalidArgumentError(
      absl::StrCat("'", text, "' is not a size (write e.g. 20GiB, 512MiB, 24GB or a byte count)"));
  if (number.empty() || number == ".") return bad;
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size()) return bad;
  double scale = 0;
  if (unit.empty() || unit == "b")
    scale = 1;
  else if (unit == "kib")
    scale = double(kKiB);
  else if (unit == "mib")
    scale = double(kMiB);
  else if (unit == "gib")
    scale = double(kGiB);
  else if (unit == "tib")
    scale = double(kGiB) * 1024;
  else if (unit == "kb")
    scale = 1e3;
  else if (unit == "mb")
    scale = 1e6;
  else if (unit == "gb")
    scale = 1e9;
  else if (unit == "tb")
    scale = 1e12;
  else
    return bad;
  const double bytes = value * scale;
  if (bytes >= 1.8e19) return bad;                                        // past uint64_t
  if (unit.empty() && number.find('.') != std::string::npos) return bad;  // fractional bytes
  return uint64_t(bytes + 0.5);
}

std::string FormatBytes(uint64_t bytes) {
  char buf[32];
  if (bytes < kKiB) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else if (bytes < kMiB) {
    std::snprintf(buf, sizeof buf, "%.2f KiB", double(bytes) / double(kKiB));
  } else if (bytes < kGiB) {
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(bytes) / double(kMiB));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(kGiB));
  }
  return buf;
}

}  // namespace lp
