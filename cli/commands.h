// The subcommands of the `layerpipe` program. Each Add*Command registers its flags on `app`
// and sets the callback that runs it; a callback reports failure by throwing CLI::RuntimeError
// with the exit code (after printing the reason on stderr).
#pragma once

#include "CLI/CLI.hpp"

namespace lp::cli {

void AddLogitsCommand(CLI::App& app);
void AddCheckModelCommand(CLI::App& app);
void AddInitModelCommand(CLI::App& app);
// Only where the CUDA backend is built.
void AddBenchCommand(CLI::App& app);

}  // namespace lp::cli
