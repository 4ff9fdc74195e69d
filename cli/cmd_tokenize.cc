// `layerpipe tokenize`: the model directory's tokenizer from the command line, exactly as the
// server encodes prompts.
#include <cstdio>
#include <iostream>
#include <iterator>

#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace lp::cli {
void AddTokenizeCommand(CLI::App& app) {
  struct Options {
    std::string model, text;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "tokenize", "encode text into token ids (special tokens in the text are matched)");
  cmd->add_option("--model", o->model, "model directory holding tokenizer.json")->required();
  auto* text = cmd->add_option("--text", o->text,
                               "the text; without it standard input is read as is (no newline "
                               "stripped)");
  cmd->add_flag("--json", o->json, R"(print {"ids": [...]} instead of 1,2,3)");
  cmd->callback([o, text] {
    auto tokenizer = Tokenizer::Load(o->model);
    if (!tokenizer.ok()) Fail(tokenizer.status());
    if (text->count() == 0) {
      std::cin >> std::noskipws;
      o->text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    std::vector<int32_t> ids = (*tokenizer)->Encode(o->text);
    if (o->json) {
      std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
    } else {
      std::printf("%s\n", absl::StrJoin(ids, ",").c_str());
    }
  });
}

}  // namespace lp::cli
