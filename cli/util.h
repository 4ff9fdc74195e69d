// Small helpers shared by the subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lp::cli {

// Parses "1,2,3" into ids; an error names the bad entry.
absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text);

// Prints "error: <message>" on stderr and leaves the program with `exit_code`.
[[noreturn]] void Fail(const absl::Status& status, int exit_code = 1);

}  // namespace lp::cli
