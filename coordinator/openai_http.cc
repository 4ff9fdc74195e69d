// The OpenAI-compatible HTTP API (see openai_http.h): the routes, whole and streamed responses.
// The request and response shapes are openai_protocol.h's.
#include "coordinator/openai_http.h"

#include <httplib.h>

#include <chrono>
#include <memory>

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

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One completion being answered: what the whole and the streamed response share.
struct Completion {
  openai::ParsedRequest p;
  std::shared_ptr<GenerationStream> stream;
  const Tokenizer* tok = nullptr;
  std::string id, model;
  int64_t created = 0;

  // A choice: its delta (chat) or text (completions), finish reason and log-probabilities.
  json Choice(json delta_or_text, json finish, json logprobs) const {
    json c = {
        {"index", 0}, {"finish_reason", std::move(finish)}, {"logprobs", std::move(logprobs)}};
    c[p.chat ? "delta" : "text"] = std::move(delta_or_text);
    return c;
  }
  json Object(const char* object, json choices) const {
    return {{"id", id},
            {"object", object},
            {"created", created},
            {"model", model},
            {"choices", std::move(choices)}};
  }
};

// One JSON body once the generation ends.
void RespondWhole(const Completion& c, httplib::Response& res) {
  const openai::ParsedRequest& p = c.p;
  std::string text;
  json logprobs = p.chat ? json{{"content", json::array()}} : json(nullptr);
  int64_t offset = 0;
  while (true) {
    auto piece = c.stream->Poll(kPollMs);
    if (!piece.ok()) return SendError(res, FromStatus(piece.status()));
    if (!piece->send) continue;
    text += piece->response.text();
    if (p.logprobs) {
      const json lp = Logprobs(piece->response, p, c.tok, &offset);
      if (p.chat) {
        for (const auto& t : lp["content"]) logprobs["content"].push_back(t);
      } else if (logprobs.is_null()) {
        logprobs = lp;
      } else {
        for (const char* k : {"tokens", "token_logprobs", "top_logprobs", "text_offset"})
          for (const auto& v : lp[k]) logprobs[k].push_back(v);
      }
    }
    if (!piece->finished) continue;
    json choice = {{"index", 0},
                   {"finish_reason", FinishName(piece->response.finish_reason())},
                   {"logprobs", p.logprobs ? logprobs : json(nullptr)}};
    if (p.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
    }
    json out = c.Object(p.chat ? "chat.completion" : "text_completion", {choice});
    out["usage"] = UsageJson(piece->response);
    res.set_content(Dump(out), "application/json");
    return;
  }
}

// Server-sent events: a chunk per response with text, the finish, usage, then [DONE]. A client
// that goes away has its request cancelled.
void RespondStreamed(std::shared_ptr<Completion> c, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [c](size_t, httplib::DataSink& sink) {
    const openai::ParsedRequest& p = c->p;
    auto send = [&](const json& j) {
      const std::string s = "data: " + Dump(j) + "\n\n";
      return sink.write(s.data(), s.size());
    };
    auto chunk = [&](json choices) {
      json j = c->Object(p.chat ? "chat.completion.chunk" : "text_completion", std::move(choices));
      if (p.include_usage) j["usage"] = nullptr;
      return j;
    };
    auto gone = [&] {
      c->stream->Cancel();
      return false;
    };
    int64_t offset = 0;
    if (p.chat &&
        !send(chunk({c->Choice({{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)}))) {
      return gone();
    }
    while (true) {
      if (!sink.is_writable()) return gone();
      auto piece = c->stream->Poll(kPollMs);
      if (!piece.ok()) {  // headers are gone: the error travels as an event
        send(ErrorBody(FromStatus(piece.status())));
        sink.done();
        return true;
      }
      if (!piece->send) continue;
      const auto& r = piece->response;
      if (!r.text().empty() || r.logprobs_size() > 0) {
        const json lp = p.logprobs ? Logprobs(r, p, c->tok, &offset) : json(nullptr);
        const json delta = p.chat ? json{{"content", r.text()}} : json(r.text());
        if (!send(chunk({c->Choice(delta, nullptr, lp)}))) return gone();
      }
      if (!piece->finished) continue;
      const json end = p.chat ? json::object() : json("");
      bool ok = send(chunk({c->Choice(end, FinishName(r.finish_reason()), nullptr)}));
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

absl::Status OpenAiHttp::Start(const std::string& listen, const TlsFiles& tls) {
  if (tls.cert.empty()) {
    server_ = std::make_unique<httplib::Server>();
  } else {
    auto https = std::make_unique<httplib::SSLServer>(tls.cert.c_str(), tls.key.c_str(),
                                                      tls.ca.empty() ? nullptr : tls.ca.c_str());
    if (!https->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "coordinator.api_tls: cannot use ", tls.cert, " and ", tls.key,
          tls.ca.empty() ? "" : " and " + tls.ca, " (unreadable, or not a matching PEM pair)"));
    }
    server_ = std::move(https);
  }
  server_->new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  server_->set_payload_max_length(size_t(16) << 20);
  const Tokenizer* tok = service_->model().tokenizer;

  auto complete = [this, tok](const httplib::Request& req, httplib::Response& res, bool chat) {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return SendError(res, {400, "the body is not valid JSON", "", ""});
    auto c = std::make_shared<Completion>();
    c->p.chat = chat;
    if (auto e = Parse(body, model_name_, &c->p)) return SendError(res, *e);
    // The client's x-request-id names the request in the log (and comes back), else a new one.
    const std::string request_id = req.has_header("x-request-id")
                                       ? req.get_header_value("x-request-id")
                                       : service_->NewRequestId();
    res.set_header("x-request-id", request_id);
    auto started = service_->Start(c->p.request, {"http", request_id});
    if (!started.ok()) return SendError(res, FromStatus(started.status()));
    c->stream = std::move(*started);
    c->tok = tok;
    c->id = absl::StrCat(chat ? "chatcmpl-" : "cmpl-", service_->NewRequestId());
    c->model = model_name_;
    c->created = UnixNow();
    if (c->p.stream) {
      RespondStreamed(std::move(c), res);
    } else {
      RespondWhole(*c, res);
    }
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
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/health" || service_->Allows(req.get_header_value("Authorization"))) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.set_header("WWW-Authenticate", "Bearer");
    SendError(res, {401,
                    req.has_header("Authorization")
                        ? "the API token is not valid"
                        : "this server asks for an API token (Authorization: Bearer TOKEN)",
                    "", "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
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
