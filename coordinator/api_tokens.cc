// Reading and checking the API's bearer tokens (see api_tokens.h).
#include "coordinator/api_tokens.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace lp {
namespace {

// `s` without the spaces (and tabs, carriage returns) around it.
std::string_view Trim(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

absl::StatusOr<std::vector<std::string>> ReadTokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError("coordinator.auth.tokens_file: cannot read " + path);
  std::vector<std::string> tokens;
  for (std::string line; std::getline(in, line);) {
    const std::string_view token = Trim(line);
    if (!token.empty() && token[0] != '#') tokens.emplace_back(token);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator.auth.tokens_file: ", path, " holds no token"));
  }
  return tokens;
}

// Equal strings, in a time that depends only on their lengths.
bool SameBytes(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApiTokens>> ApiTokens::Load(const std::string& path) {
  std::unique_ptr<ApiTokens> tokens(new ApiTokens(path));
  if (absl::Status s = tokens->Reload(); !s.ok()) return s;
  return tokens;
}

absl::Status ApiTokens::Reload() {
  auto read = ReadTokens(path_);
  if (!read.ok()) return read.status();
  std::lock_guard<std::mutex> lock(mu_);
  tokens_ = std::move(*read);
  return absl::OkStatus();
}

bool ApiTokens::Allows(std::string_view authorization) const {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(std::string(authorization.substr(0, kScheme.size())),
                              std::string(kScheme))) {
    return false;
  }
  const std::string_view given = Trim(authorization.substr(kScheme.size()));
  std::lock_guard<std::mutex> lock(mu_);
  bool found = false;
  for (const std::string& token : tokens_) found |= SameBytes(given, token);
  return found;
}

size_t ApiTokens::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_.size();
}

}  // namespace lp
