// The OpenAI API's shapes (see openai_protocol.h).
#include "coordinator/openai_protocol.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lp::openai {
namespace {

using layerpipe::v1::GenerateRequest;
using layerpipe::v1::GenerateResponse;

ApiError BadField(const std::string& field, const std::string& what) {
  return {400, absl::StrCat("'", field, "' ", what), field, ""};
}

// The text of one token for log-probabilities (its bytes may be part of a character).
std::string TokenText(const Tokenizer* tok, int32_t id) {
  if (tok == nullptr) return absl::StrCat("token_id:", id);
  const int32_t one[1] = {id};
  return tok->Decode(one);
}

json Bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

}  // namespace

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);  // a token may split UTF-8
}

json ErrorBody(const ApiError& e) {
  const char* type = e.status == 429   ? "rate_limit_error"
                     : e.status >= 500 ? "server_error"
                                       : "invalid_request_error";
  return {{"error",
           {{"message", e.message},
            {"type", type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

ApiError FromStatus(const absl::Status& s) {
  ApiError e;
  e.message = std::string(s.message());
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: {
      e.status = 400;
      // The gRPC API's checks of a field start with its name ("temperature must be ...").
      const std::string first = e.message.substr(0, e.message.find(' '));
      for (const char* field : {"temperature", "top_p", "top_k", "min_p", "max_tokens",
                                "repetition_penalty", "seed", "logprobs"}) {
        if (first == field) e.param = first;
      }
      break;
    }
    case absl::StatusCode::kNotFound:
      e.status = 404;
      break;
    case absl::StatusCode::kResourceExhausted:
      e.status = 429;
      e.code = "queue_full";
      break;
    case absl::StatusCode::kUnavailable:
      e.status = 503;
      e.code = "unavailable";
      break;
    case absl::StatusCode::kDeadlineExceeded:
      e.status = 504;
      e.code = "timeout";
      break;
    default:
      e.status = 500;
  }
  return e;
}

std::optional<ApiError> Parse(const json& body, const std::string& model_name, ParsedRequest* out) {
  if (!body.is_object()) return ApiError{400, "the body must be a JSON object", "", ""};
  GenerateRequest& r = out->request;
  auto present = [&](const char* key) { return body.contains(key) && !body[key].is_null(); };
  if (present("model")) {
    if (!body["model"].is_string()) return BadField("model", "must be a string");
    if (body["model"].get<std::string>() != model_name) {
      return ApiError{404,
                      absl::StrCat("The model '", body["model"].get<std::string>(),
                                   "' does not exist; this server serves '", model_name, "'"),
                      "model", "model_not_found"};
    }
  }
  if (present("n") && (!body["n"].is_number_integer() || body["n"].get<int64_t>() != 1)) {
    return BadField("n", "must be 1: one choice per request is served");
  }
  // Numbers: any JSON number, range checks are the gRPC API's (ValidateGenerate).
  for (const char* key : {"temperature", "top_p", "min_p", "repetition_penalty"}) {
    if (present(key) && !body[key].is_number()) return BadField(key, "must be a number");
  }
  for (const char* key : {"top_k", "max_tokens", "max_completion_tokens", "seed"}) {
    if (present(key) && !body[key].is_number_integer()) return BadField(key, "must be an integer");
  }
  r.set_temperature(present("temperature") ? body["temperature"].get<float>() : 1.0f);
  if (present("top_p")) r.set_top_p(body["top_p"].get<float>());
  if (present("min_p")) r.set_min_p(body["min_p"].get<float>());
  if (present("repetition_penalty"))
    r.set_repetition_penalty(body["repetition_penalty"].get<float>());
  if (present("top_k")) {
    const int64_t k = body["top_k"].get<int64_t>();
    if (k < -1 || k > (int64_t(1) << 30)) return BadField("top_k", "must be -1, 0 or positive");
    r.set_top_k(int32_t(k < 0 ? 0 : k));  // -1 (as vLLM): no top-k
  }
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    if (!present(key)) continue;
    const int64_t n = body[key].get<int64_t>();
    if (n < 1 || n > (int64_t(1) << 30)) return BadField(key, "must be a positive integer");
    r.set_max_tokens(int32_t(n));
    break;
  }
  if (present("seed")) {
    if (body["seed"].get<int64_t>() < 0 && !body["seed"].is_number_unsigned()) {
      return BadField("seed", "must not be negative");
    }
    r.set_seed(body["seed"].get<uint64_t>());
  }
  if (present("stop")) {
    const json& stop = body["stop"];
    if (stop.is_string()) {
      r.add_stop(stop.get<std::string>());
    } else if (stop.is_array()) {
      for (const json& s : stop) {
        if (!s.is_string()) return BadField("stop", "must be a string or a list of strings");
        r.add_stop(s.get<std::string>());
      }
    } else {
      return BadField("stop", "must be a string or a list of strings");
    }
  }
  for (const char* key : {"ignore_eos", "stream"}) {
    if (present(key) && !body[key].is_boolean()) return BadField(key, "must be true or false");
  }
  r.set_ignore_eos(present("ignore_eos") && body["ignore_eos"].get<bool>());
  out->stream = present("stream") && body["stream"].get<bool>();
  if (present("stream_options")) {
    const json& so = body["stream_options"];
    if (!so.is_object()) return BadField("stream_options", "must be an object");
    if (so.contains("include_usage") && !so["include_usage"].is_boolean()) {
      return BadField("stream_options.include_usage", "must be true or false");
    }
    out->include_usage = so.value("include_usage", false);
  }

  if (out->chat) {
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
      return BadField("messages", "must be a non-empty list of {role, content}");
    }
    auto* chat = r.mutable_chat();
    for (const json& m : body["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
        return BadField("messages", "must be a list of {role, content}");
      }
      std::string content;
      const json c = m.value("content", json(nullptr));
      if (c.is_string()) {
        content = c.get<std::string>();
      } else if (c.is_array()) {  // content parts: text only
        for (const json& part : c) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
              !part["text"].is_string()) {
            return BadField("messages", "content parts must be {type: \"text\", text}");
          }
          content += part["text"].get<std::string>();
        }
      } else if (!c.is_null()) {
        return BadField("messages", "content must be a string or a list of text parts");
      }
      auto* msg = chat->add_messages();
      msg->set_role(m["role"].get<std::string>());
      msg->set_content(content);
    }
    if (present("chat_template_kwargs")) {
      const json& kw = body["chat_template_kwargs"];
      if (!kw.is_object()) return BadField("chat_template_kwargs", "must be an object");
      if (kw.contains("enable_thinking")) {
        if (!kw["enable_thinking"].is_boolean()) {
          return BadField("chat_template_kwargs.enable_thinking", "must be true or false");
        }
        chat->set_enable_thinking(kw["enable_thinking"].get<bool>());
      }
    }
    if (present("logprobs")) {
      if (!body["logprobs"].is_boolean()) return BadField("logprobs", "must be true or false");
      out->logprobs = body["logprobs"].get<bool>();
    }
    if (present("top_logprobs")) {
      if (!body["top_logprobs"].is_number_integer()) {
        return BadField("top_logprobs", "must be an integer");
      }
      out->top_logprobs = body["top_logprobs"].get<int>();
      if (!out->logprobs) return BadField("top_logprobs", "needs logprobs: true");
    }
  } else {
    if (!present("prompt")) return BadField("prompt", "is missing");
    const json& p = body["prompt"];
    if (p.is_string()) {
      r.set_text(p.get<std::string>());
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
      r.set_text(p[0].get<std::string>());
    } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
      for (const json& id : p) {
        if (!id.is_number_integer()) return BadField("prompt", "must be a string or token ids");
        r.mutable_token_ids()->add_ids(id.get<int32_t>());
      }
    } else {
      return BadField("prompt", "must be a string or a list of token ids (one prompt per request)");
    }
    if (present("echo") && body["echo"].is_boolean() && body["echo"].get<bool>()) {
      return BadField("echo", "is not served");
    }
    if (present("logprobs")) {
      if (!body["logprobs"].is_number_integer()) return BadField("logprobs", "must be an integer");
      out->top_logprobs = body["logprobs"].get<int>();
      out->logprobs = true;
    }
  }
  if (out->top_logprobs < 0 || out->top_logprobs > 20) {
    return BadField(out->chat ? "top_logprobs" : "logprobs", "must be between 0 and 20");
  }
  if (out->logprobs) r.set_logprobs(std::max(1, out->top_logprobs));  // the chosen token's too
  return std::nullopt;
}

json Logprobs(const GenerateResponse& r, const ParsedRequest& p, const Tokenizer* tok,
              int64_t* text_offset) {
  if (p.chat) {
    json content = json::array();
    for (const auto& step : r.logprobs()) {
      const std::string t = TokenText(tok, step.chosen().id());
      json top = json::array();
      for (int k = 0; k < std::min(step.top_size(), p.top_logprobs); ++k) {
        const std::string tt = TokenText(tok, step.top(k).id());
        top.push_back({{"token", tt}, {"logprob", step.top(k).logprob()}, {"bytes", Bytes(tt)}});
      }
      content.push_back({{"token", t},
                         {"logprob", step.chosen().logprob()},
                         {"bytes", Bytes(t)},
                         {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (const auto& step : r.logprobs()) {
    const std::string t = TokenText(tok, step.chosen().id());
    tokens.push_back(t);
    lps.push_back(step.chosen().logprob());
    json top = json::object();
    for (int k = 0; k < std::min(step.top_size(), p.top_logprobs); ++k) {
      top[TokenText(tok, step.top(k).id())] = step.top(k).logprob();
    }
    tops.push_back(top);
    offsets.push_back(*text_offset);
    *text_offset += int64_t(t.size());
  }
  return {{"tokens", tokens},
          {"token_logprobs", lps},
          {"top_logprobs", tops},
          {"text_offset", offsets}};
}

const char* FinishName(layerpipe::v1::FinishReason r) {
  return r == layerpipe::v1::FINISH_REASON_LENGTH ? "length" : "stop";
}

json UsageJson(const GenerateResponse& last) {
  const int64_t prompt = last.usage().prompt_tokens(), done = last.usage().completion_tokens();
  return {{"prompt_tokens", prompt}, {"completion_tokens", done}, {"total_tokens", prompt + done}};
}

}  // namespace lp::openai
