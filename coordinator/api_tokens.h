// The public API's bearer tokens (coordinator.auth.tokens_file): one token per line, blank
// lines and lines starting with '#' skipped, surrounding spaces trimmed. The gRPC API reads
// them from the `authorization` metadata, the HTTP API from the Authorization header, both as
// "Bearer TOKEN". Reload() rereads the file (the coordinator does on SIGHUP).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lp {

class ApiTokens {
 public:
  // An error when the file cannot be read or holds no token.
  static absl::StatusOr<std::unique_ptr<ApiTokens>> Load(const std::string& path);

  // Rereads the file; on an error keeps the tokens it had.
  absl::Status Reload();
  // Whether `authorization` is "Bearer TOKEN" with one of the tokens (compared in a time that
  // does not depend on where a wrong token differs).
  bool Allows(std::string_view authorization) const;
  size_t size() const;
  const std::string& path() const { return path_; }

 private:
  explicit ApiTokens(std::string path) : path_(std::move(path)) {}

  const std::string path_;
  mutable std::mutex mu_;
  std::vector<std::string> tokens_;
};

}  // namespace lp
