// `layerpipe detokenize`: the model directory's tokenizer from the command line, exactly as
// the server decodes generated ids.
#include <cstdio>

#include "cli/commands.h"
#include "cli/util.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace lp::cli {

void AddDetokenizeCommand(CLI::App& app) {
  struct Options {
    std::string model, ids;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("detokenize", "decode token ids into text");
  cmd->add_option("--model", o->model, "model directory holding tokenizer.json")->required();
  cmd->add_option("--ids", o->ids, "comma-separated token ids, e.g. 9707,11,1879")->required();
  cmd->add_flag("--json", o->json, R"(print {"text": "..."} instead of the bare text)");
  cmd->callback([o] {
    auto tokenizer = Tokenizer::Load(o->model);
    if (!tokenizer.ok()) Fail(tokenizer.status());
    auto ids = ParseIdList(o->ids);
    if (!ids.ok()) Fail(ids.status());
    std::string text = (*tokenizer)->Decode(*ids);
    if (o->json) {
      std::printf("%s\n", nlohmann::json{{"text", text}}.dump().c_str());
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);  // as is: no newline added
    }
  });
}

}  // namespace lp::cli
