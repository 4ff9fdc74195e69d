// Small helpers shared by the subcommands.
#include "cli/util.h"

#include <charconv>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace lp::cli {

absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int64_t v = -1;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || v < 0 ||
        v > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", part, "' is not a token id (a non-negative integer)"));
    }
    ids.push_back(int32_t(v));
  }
  return ids;
}

void Fail(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  throw CLI::RuntimeError(exit_code);
}

}  // namespace lp::cli
