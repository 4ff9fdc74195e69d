// `layerpipe tokenize` and `layerpipe detokenize`: the model directory's tokenizer from the
// command line, exactly as the server encodes prompts and decodes generated ids.
#include <cstdio>
#include <iostream>
#include <iterator>

#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace lp::cli {
namespace {

std::unique_ptr<Tokenizer> LoadOrFail(const std::string& model) {
  auto tokenizer = Tokenizer::Load(model);
  if (!tokenizer.ok()) Fail(tokenizer.status());
  return std::move(*tokenizer);
}

}  // namespace

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
    auto tokenizer = LoadOrFail(o->model);
    if (text->count() == 0) {
      std::cin >> std::noskipws;
      o->text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    std::vector<int32_t> ids = tokenizer->Encode(o->text);
    if (o->json) {
      std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
    } else {
      std::printf("%s\n", absl::StrJoin(ids, ",").c_str());
    }
  });
}

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
    auto tokenizer = LoadOrFail(o->model);
    auto ids = ParseIdList(o->ids);
    if (!ids.ok()) Fail(ids.status());
    std::string text = tokenizer->Decode(*ids);
    if (o->json) {
      std::printf("%s\n", nlohmann::json{{"text", text}}.dump().c_str());
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);  // as is: no newline added
    }
  });
}

}  // namespace lp::cli
