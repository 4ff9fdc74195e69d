// `layerpipe`: the one program users run. Subcommands live in cmd_*.cc.
#include "cli/commands.h"
#include "common/program.h"
#include "worker/cpu/cpu_backend.h"

int main(int argc, char** argv) {
  lp::EnsurePassiveOpenMpWait(argv);
  CLI::App app{"layerpipe: serve a Qwen3 / Qwen2 model split by layers over several devices"};
  app.require_subcommand(1);
  lp::cli::AddLogitsCommand(app);
  lp::cli::AddCheckModelCommand(app);
  lp::cli::AddInitModelCommand(app);
  lp::cli::AddServeCommand(app);
  lp::cli::AddGenerateCommand(app);
  lp::cli::AddStatusCommand(app);
  lp::cli::AddLoadTestCommand(app);
  lp::cli::AddPlanCommand(app);
  lp::cli::AddTokenizeCommand(app);
  lp::cli::AddDetokenizeCommand(app);
  lp::cli::AddBenchTokenizerCommand(app);
#ifdef LAYERPIPE_WITH_CUDA
  lp::cli::AddBenchCommand(app);
#endif
  const int code = lp::ParseCommandLine(app, argc, argv);
  return code < 0 ? 0 : code;
}
