// The subcommands of the `layerpipe` program. Each Add*Command registers its flags on `app`
// and sets the callback that runs it; a callback reports failure by throwing CLI::RuntimeError
// with the exit code (after printing the reason on stderr).
#pragma once

#include "CLI/CLI.hpp"

namespace lp::cli {

void AddLogitsCommand(CLI::App& app);
void AddGreedyCommand(CLI::App& app);
void AddCheckModelCommand(CLI::App& app);
void AddInitModelCommand(CLI::App& app);
void AddServeCommand(CLI::App& app);
void AddGenerateCommand(CLI::App& app);
void AddStatusCommand(CLI::App& app);
void AddLoadTestCommand(CLI::App& app);
void AddPlanCommand(CLI::App& app);
void AddTokenizeCommand(CLI::App& app);
void AddDetokenizeCommand(CLI::App& app);
void AddBenchTokenizerCommand(CLI::App& app);
// Only where the CUDA backend is built.
void AddBenchCommand(CLI::App& app);

}  // namespace lp::cli
