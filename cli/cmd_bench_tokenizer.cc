// `layerpipe bench-tokenizer`: single-threaded encode throughput on a large mixed text, in MB/s
// (10^6 bytes of UTF-8 input per second), best of several runs. --write-text and --write-ids
// hand the same text and our ids to tools/bench_tokenizer_hf.py, which times Hugging Face
// `tokenizers` on it and checks that the ids agree.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "cli/bench_text.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace lp::cli {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void WriteFileOrFail(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), std::streamsize(size));
  if (!out) Fail(absl::UnavailableError(absl::StrCat(path, ": cannot write")));
}

}  // namespace

void AddBenchTokenizerCommand(CLI::App& app) {
  struct Options {
    std::string model, file, write_text, write_ids;
    double mb = 8;
    uint64_t seed = 1;
    int repeat = 3;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("bench-tokenizer",
                                 "time single-threaded encoding of a large mixed text (MB/s)");
  cmd->add_option("--model", o->model, "model directory holding tokenizer.json")->required();
  cmd->add_option("--file", o->file, "encode this file instead of the generated text");
  cmd->add_option("--mb", o->mb, "size of the generated text in MB (default 8)");
  cmd->add_option("--seed", o->seed, "seed of the generated text (default 1)");
  cmd->add_option("--repeat", o->repeat, "timed runs; the best is reported (default 3)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--write-text", o->write_text, "write the text that was encoded to this file");
  cmd->add_option("--write-ids", o->write_ids, "write the ids as little-endian int32");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    auto t0 = Clock::now();
    auto tokenizer = Tokenizer::Load(o->model);
    if (!tokenizer.ok()) Fail(tokenizer.status());
    const double load_s = SecondsSince(t0);
    std::string text;
    if (!o->file.empty()) {
      std::ifstream in(o->file, std::ios::binary);
      if (!in) Fail(absl::NotFoundError(absl::StrCat(o->file, ": cannot open")));
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    } else {
      text = MakeBenchText(size_t(o->mb * 1e6), o->seed);
    }
    if (!o->write_text.empty()) WriteFileOrFail(o->write_text, text.data(), text.size());
    std::vector<int32_t> ids;
    double best = 1e30;
    for (int r = 0; r < o->repeat; ++r) {
      auto t = Clock::now();
      ids = (*tokenizer)->Encode(text);
      best = std::min(best, SecondsSince(t));
    }
    if (!o->write_ids.empty()) WriteFileOrFail(o->write_ids, ids.data(), ids.size() * 4);
    const double mb_s = double(text.size()) / 1e6 / best;
    if (o->json) {
      nlohmann::json j = {{"bytes", text.size()}, {"tokens", ids.size()},   {"seconds", best},
                          {"mb_per_s", mb_s},     {"load_seconds", load_s}, {"threads", 1}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf(
          "encoded %zu bytes into %zu tokens in %.3f s (best of %d): %.2f MB/s, one "
          "thread (tokenizer load %.2f s)\n",
          text.size(), ids.size(), best, o->repeat, mb_s, load_s);
    }
  });
}

}  // namespace lp::cli
