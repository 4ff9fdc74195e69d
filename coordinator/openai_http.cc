// The OpenAI-compatible HTTP API (see openai_http.h): the routes, whole and streamed responses.
// The request and response shapes are openai_protocol.h's.
#include "coordinator/openai_http.h"

#include <httplib.h>

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/metrics_server.h"
#include "coordinator/openai_protocol.h"

namespace lp {
namespace {

using layerpipe::v1::GenerateResponse;
using openai::ApiError;
using openai::Dump;
using openai::FinishName;
using openai::FromStatus;
using openai::json;
using openai::Logprobs;
using openai::Parse;
using openai::UsageJson;

constexpr int kHttpThreads = 256;  // a streaming response holds a thread
constexpr int kPollMs = 50;        // how often a waiting response checks its client

void SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(Dump(ErrorBody(e)), "application/json");
}

std::string RandomId(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng()));
  return absl::StrCat(prefix, hex);
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

OpenAiHttp::OpenAiHttp(InferenceService* service, std::string model_name,
                       std::function<bool()> serving, Telemetry* telemetry)
    : service_(service),
      model_name_(std::move(model_name)),
      serving_(std::move(serving)),
      telemetry_(telemetry),
      created_(UnixNow()) {}

OpenAiHttp::~OpenAiHttp() { Stop(); }

void OpenAiHttp::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::Status OpenAiHttp::Start(const std::string& listen) {
  server_ = std::make_unique<httplib::Server>();
  server_->new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  server_->set_payload_max_length(size_t(16) << 20);
  const Tokenizer* tok = service_->model().tokenizer;

  auto complete = [this, tok](const httplib::Request& req, httplib::Response& res, bool chat) {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return SendError(res, {400, "the body is not valid JSON", "", ""});
    openai::ParsedRequest p;
    p.chat = chat;
    if (auto e = Parse(body, model_name_, &p)) return SendError(res, *e);
    // The client's x-request-id names the request in the log (and comes back), else a new one.
    const std::string request_id = req.has_header("x-request-id")
                                       ? req.get_header_value("x-request-id")
                                       : service_->NewRequestId();
    res.set_header("x-request-id", request_id);
    auto started = service_->Start(p.request, {"http", request_id});
    if (!started.ok()) return SendError(res, FromStatus(started.status()));
    std::shared_ptr<GenerationStream> stream = std::move(*started);
    const std::string id = RandomId(chat ? "chatcmpl-" : "cmpl-");
    const int64_t created = UnixNow();
    const char* object = chat ? "chat.completion" : "text_completion";
    auto choice = [chat](json delta_or_text, json finish, json logprobs) {
      json c = {{"index", 0}, {"finish_reason", finish}, {"logprobs", logprobs}};
      c[chat ? "delta" : "text"] = std::move(delta_or_text);
      return c;
    };

    if (!p.stream) {
      std::string text;
      json logprobs = p.chat ? json{{"content", json::array()}} : json(nullptr);
      int64_t offset = 0;
      while (true) {
        auto piece = stream->Poll(kPollMs);
        if (!piece.ok()) return SendError(res, FromStatus(piece.status()));
        if (!piece->send) continue;
        text += piece->response.text();
        if (p.logprobs) {
          const json lp = Logprobs(piece->response, p, tok, &offset);
          if (p.chat) {
            for (const auto& c : lp["content"]) logprobs["content"].push_back(c);
          } else if (logprobs.is_null()) {
            logprobs = lp;
          } else {
            for (const char* k : {"tokens", "token_logprobs", "top_logprobs", "text_offset"})
              for (const auto& v : lp[k]) logprobs[k].push_back(v);
          }
        }
        if (!piece->finished) continue;
        json c = {{"index", 0},
                  {"finish_reason", FinishName(piece->response.finish_reason())},
                  {"logprobs", p.logprobs ? logprobs : json(nullptr)}};
        if (chat) {
          c["message"] = {{"role", "assistant"}, {"content", text}};
        } else {
          c["text"] = text;
        }
        const json out = {{"id", id},           {"object", object},
                          {"created", created}, {"model", model_name_},
                          {"choices", {c}},     {"usage", UsageJson(piece->response)}};
        res.set_content(Dump(out), "application/json");
        return;
      }
    }

    // Server-sent events: a chunk per response with text, the finish, usage, then [DONE].
    res.set_header("Cache-Control", "no-cache");
    const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream, p, tok, id, created, chunk_object, choice](size_t, httplib::DataSink& sink) {
          auto send = [&](const json& j) {
            const std::string s = "data: " + Dump(j) + "\n\n";
            return sink.write(s.data(), s.size());
          };
          auto chunk = [&](json choices) {
            json j = {{"id", id},
                      {"object", chunk_object},
                      {"created", created},
                      {"model", model_name_},
                      {"choices", std::move(choices)}};
            if (p.include_usage) j["usage"] = nullptr;
            return j;
          };
          int64_t offset = 0;
          if (p.chat &&
              !send(chunk({choice({{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)}))) {
            stream->Cancel();
            return false;
          }
          while (true) {
            if (!sink.is_writable()) {
              stream->Cancel();
              return false;
            }
            auto piece = stream->Poll(kPollMs);
            if (!piece.ok()) {  // headers are gone: the error travels as an event
              send(ErrorBody(FromStatus(piece.status())));
              sink.done();
              return true;
            }
            if (!piece->send) continue;
            const auto& r = piece->response;
            const json lp = p.logprobs ? Logprobs(r, p, tok, &offset) : json(nullptr);
            if (!r.text().empty() || r.logprobs_size() > 0) {
              const json delta = p.chat ? json{{"content", r.text()}} : json(r.text());
              if (!send(chunk({choice(delta, nullptr, lp)}))) {
                stream->Cancel();
                return false;
              }
            }
            if (!piece->finished) continue;
            const json end = p.chat ? json::object() : json("");
            bool ok = send(chunk({choice(end, FinishName(r.finish_reason()), nullptr)}));
            if (ok && p.include_usage) {
              json u = chunk(json::array());
              u["usage"] = UsageJson(r);
              ok = send(u);
            }
            const std::string done = "data: [DONE]\n\n";
            if (ok) sink.write(done.data(), done.size());
            sink.done();
            return ok;
          }
        });
  };

  server_->Post("/v1/chat/completions",
                [complete](const httplib::Request& req, httplib::Response& res) {
                  complete(req, res, true);
                });
  server_->Post("/v1/completions", [complete](const httplib::Request& req, httplib::Response& res) {
    complete(req, res, false);
  });
  const json model = {
      {"id", model_name_}, {"object", "model"}, {"created", created_}, {"owned_by", "layerpipe"}};
  server_->Get("/v1/models", [model](const httplib::Request&, httplib::Response& res) {
    res.set_content(Dump({{"object", "list"}, {"data", {model}}}), "application/json");
  });
  server_->Get(R"(/v1/models/(.+))", [this, model](const httplib::Request& req,
                                                   httplib::Response& res) {
    if (req.matches[1] != model_name_) {
      return SendError(
          res, {404, absl::StrCat("The model '", std::string(req.matches[1]), "' does not exist"),
                "model", "model_not_found"});
    }
    res.set_content(Dump(model), "application/json");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    if (telemetry_ == nullptr) return SendError(res, {404, "no metrics here", "", ""});
    res.set_content(telemetry_->Text(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool up = serving_();
    res.status = up ? 200 : 503;
    res.set_content(Dump({{"status", up ? "serving" : "not serving"}}), "application/json");
  });
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    SendError(res, {res.status == 404 ? 404 : res.status,
                    absl::StrCat(req.method, " ", req.path,
                                 res.status == 404 ? ": no such path" : ": refused"),
                    "", ""});
  });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendError(res, {500, what, "", ""});
      });

  if (!BindHttp(*server_, listen)) {
    return absl::UnavailableError(
        absl::StrCat("coordinator.http_listen ", listen, ": cannot listen there (taken?)"));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

}  // namespace lp
