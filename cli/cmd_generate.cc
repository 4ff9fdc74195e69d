// `layerpipe generate`: a client of the coordinator's Generate stream. Prints text as it
// arrives, or with --json one object per event, the last with every generated id, the whole
// text, the finish reason and (with --logprobs) each step's top-K log-probabilities.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/grpc_status.h"
#include "layerpipe/v1/layerpipe.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace lp::cli {
namespace {

struct GenerateOptions {
  ClientOptions client;
  std::string prompt, prompt_ids, chat, system;
  int32_t max_tokens = 0;
  float temperature = 0.0f, top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
  int32_t top_k = 0, logprobs = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false, no_think = false, json = false;
  double timeout_s = 600;
};

std::string FinishName(layerpipe::v1::FinishReason r) {
  switch (r) {
    case layerpipe::v1::FINISH_REASON_LENGTH:
      return "length";
    case layerpipe::v1::FINISH_REASON_STOP:
      return "stop";
    default:
      return "unspecified";
  }
}

nlohmann::json LogprobsJson(const layerpipe::v1::StepLogprobs& s) {
  nlohmann::json top = nlohmann::json::array();
  for (const auto& t : s.top()) top.push_back({{"id", t.id()}, {"logprob", t.logprob()}});
  return {{"id", s.chosen().id()}, {"logprob", s.chosen().logprob()}, {"top", top}};
}

void RunGenerate(const GenerateOptions& o, CLI::App* cmd) {
  layerpipe::v1::GenerateRequest req;
  if (cmd->count("--prompt-ids")) {
    auto ids = ParseIdList(o.prompt_ids);
    if (!ids.ok()) Fail(ids.status(), 2);
    req.mutable_token_ids()->mutable_ids()->Add(ids->begin(), ids->end());
  } else if (!o.chat.empty()) {
    auto* chat = req.mutable_chat();
    if (!o.system.empty()) {
      auto* m = chat->add_messages();
      m->set_role("system");
      m->set_content(o.system);
    }
    auto* m = chat->add_messages();
    m->set_role("user");
    m->set_content(o.chat);
    if (o.no_think) chat->set_enable_thinking(false);  // unset: the template's default, on
  } else {
    req.set_text(o.prompt);
  }
  if (cmd->count("--max-tokens")) req.set_max_tokens(o.max_tokens);
  req.set_temperature(o.temperature);
  req.set_top_k(o.top_k);
  if (cmd->count("--top-p")) req.set_top_p(o.top_p);
  req.set_min_p(o.min_p);
  req.set_repetition_penalty(o.repetition_penalty);
  if (cmd->count("--seed")) req.set_seed(o.seed);
  for (const auto& s : o.stop) req.add_stop(s);
  req.set_ignore_eos(o.ignore_eos);
  req.set_logprobs(o.logprobs);

  auto stub = layerpipe::v1::Inference::NewStub(OpenChannel(o.client));
  grpc::ClientContext ctx;
  PrepareCall(o.client, ctx, std::chrono::milliseconds(int64_t(o.timeout_s * 1000)));
  auto reader = stub->Generate(&ctx, req);
  layerpipe::v1::GenerateResponse resp;
  std::vector<int32_t> all_ids;
  std::string all_text;
  nlohmann::json all_logprobs = nlohmann::json::array();
  std::string finish = "unspecified";
  nlohmann::json usage;
  while (reader->Read(&resp)) {
    all_ids.insert(all_ids.end(), resp.token_ids().begin(), resp.token_ids().end());
    all_text += resp.text();
    for (const auto& s : resp.logprobs()) all_logprobs.push_back(LogprobsJson(s));
    const bool last = resp.finish_reason() != layerpipe::v1::FINISH_REASON_UNSPECIFIED;
    if (last) {
      finish = FinishName(resp.finish_reason());
      usage = {{"prompt_tokens", resp.usage().prompt_tokens()},
               {"completion_tokens", resp.usage().completion_tokens()}};
    }
    if (o.json && last && resp.token_ids().empty() && resp.text().empty()) continue;
    if (o.json) {  // every token in a delta; the "done" object below sums them up
      nlohmann::json ev = {
          {"event", "delta"},
          {"token_ids", std::vector<int32_t>(resp.token_ids().begin(), resp.token_ids().end())},
          {"text", resp.text()}};
      std::printf("%s\n",
                  ev.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::fputs(resp.text().c_str(), stdout);
    }
    std::fflush(stdout);
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    if (!o.json) std::printf("\n");
    std::fprintf(stderr, "error: %s (gRPC code %d): %s\n",
                 absl::StatusCodeToString(FromGrpc(status).code()).c_str(),
                 int(status.error_code()), status.error_message().c_str());
    throw CLI::RuntimeError(1);
  }
  if (o.json) {
    nlohmann::json done = {{"event", "done"},
                           {"token_ids", all_ids},
                           {"text", all_text},
                           {"finish_reason", finish},
                           {"usage", usage}};
    if (o.logprobs > 0) done["logprobs"] = all_logprobs;
    std::printf("%s\n",
                done.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "[%s: %zu tokens]\n", finish.c_str(), all_ids.size());
  }
}

}  // namespace

void AddGenerateCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "stream a completion from a running cluster");
  auto o = std::make_shared<GenerateOptions>();
  AddClientOptions(cmd, &o->client);
  auto* prompt = cmd->add_option("--prompt", o->prompt, "prompt text (tokenized by the server)");
  auto* ids = cmd->add_option("--prompt-ids", o->prompt_ids, "prompt token ids, e.g. 1,2,3");
  auto* chat =
      cmd->add_option("--chat", o->chat, "a user message, rendered with the chat template");
  prompt->excludes(ids)->excludes(chat);
  ids->excludes(chat);
  cmd->add_option("--system", o->system, "a system message before --chat")->needs(chat);
  cmd->add_flag("--no-think", o->no_think, "with --chat: Qwen3's enable_thinking=false");
  cmd->add_option("--max-tokens", o->max_tokens,
                  "tokens to generate (default: up to the context limit)");
  cmd->add_option("--temperature", o->temperature, "0 is greedy")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "keep the K most likely tokens (0: off)");
  cmd->add_option("--top-p", o->top_p, "nucleus mass in (0, 1]");
  cmd->add_option("--min-p", o->min_p, "drop tokens below min_p x the top probability");
  cmd->add_option("--repetition-penalty", o->repetition_penalty, "1: off");
  cmd->add_option("--seed", o->seed, "sampling seed (same seed, same tokens)");
  cmd->add_option("--stop", o->stop, "stop before this string (repeatable)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "do not stop at the model's EOS tokens");
  cmd->add_option("--logprobs", o->logprobs, "top-K log-probabilities per step (0..20)");
  cmd->add_option("--timeout", o->timeout_s, "deadline in seconds")->capture_default_str();
  cmd->add_flag("--json", o->json, "one JSON object per event; the last has all ids and the text");
  cmd->callback([o, cmd, prompt, ids, chat] {
    if (!prompt->count() && !ids->count() && !chat->count()) {
      Fail(absl::InvalidArgumentError("give one of --prompt, --prompt-ids, --chat"), 2);
    }
    RunGenerate(*o, cmd);
  });
}

}  // namespace lp::cli
