// `layerpipe`: the one program users run. Subcommands live in cmd_*.cc.
#include <string>

#include "cli/commands.h"
#include "cli/util.h"
#include "common/program.h"
#include "engine/backend_factory.h"

int main(int argc, char** argv) {
  lp::cli::RememberArgs(argc, argv);
  // Only the commands that compute on this CPU need OpenMP's passive wait (it costs a re-exec).
  if (argc > 1 && (std::string(argv[1]) == "logits" || std::string(argv[1]) == "greedy")) {
    lp::EnsurePassiveOpenMpWait(argv);
  }
  CLI::App app{"layerpipe: serve a Qwen3 / Qwen2 model split by layers over several devices"};
  app.require_subcommand(1);
  lp::cli::AddLogitsCommand(app);
  lp::cli::AddGreedyCommand(app);
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
#else
  lp::cli::AddCudaForward(app, "bench",
                          "decode and prefill speed on GPU 0, random weights of a preset's shape "
                          "(runs layerpipe-cuda bench; see its --help)");
#endif
  const int code = lp::ParseCommandLine(app, argc, argv);
  return code < 0 ? 0 : code;
}
