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

// `endpoint` when it is host:port (a usage error otherwise: gRPC would dial port 443).
const std::string& CheckEndpoint(const std::string& endpoint);

// The program `name` in this program's folder (the others are installed beside it).
std::string SiblingBinary(const std::string& name);
// The command line as main received it (for RunCudaProgram).
void RememberArgs(int argc, char** argv);
// Replaces this process with `layerpipe-cuda` (beside this program) and the same arguments:
// `layerpipe` itself never links CUDA, so that client commands start at once. Fails (exit 1)
// when this build has no CUDA backend.
[[noreturn]] void RunCudaProgram();
// A subcommand `name` that only RunCudaProgram()s (its flags, --help too, go to layerpipe-cuda).
void AddCudaForward(CLI::App& app, const std::string& name, const std::string& description);

// Prints "error: <message>" on stderr and leaves the program with `exit_code`: 1 for runtime
// errors, 2 for usage errors (common/program.h).
[[noreturn]] void Fail(const absl::Status& status, int exit_code = 1);

}  // namespace lp::cli
