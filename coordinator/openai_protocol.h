// The OpenAI API's shapes, apart from HTTP: a request body read into a GenerateRequest (what the
// reference API has and layerpipe does not serve is refused with a 400 naming the field; unknown
// fields are ignored, as clients send many), errors in its shape with their HTTP statuses, and
// the pieces of a response (log-probabilities, finish reason, usage). openai_http.h serves them.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/tokenizer/tokenizer.h"
#include "layerpipe/v1/layerpipe.pb.h"
#include "nlohmann/json.hpp"

namespace lp::openai {

using nlohmann::json;

// An error in the reference API's shape: {"error": {message, type, param, code}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // the request field at fault, if one is
  std::string code;
};

// {"error": {message, type, param, code}}.
json ErrorBody(const ApiError& e);
// The HTTP status and code for a status of the gRPC API's checks or of the cluster.
ApiError FromStatus(const absl::Status& s);

// A request body as read: the GenerateRequest, and what it asks beyond it.
struct ParsedRequest {
  layerpipe::v1::GenerateRequest request;
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  int top_logprobs = 0;
};

// Reads the fields both endpoints share, then the endpoint's prompt (out->chat says which).
std::optional<ApiError> Parse(const json& body, const std::string& model_name, ParsedRequest* out);

// The log-probabilities of a response's tokens in the chat shape ({content: [...]}) or the
// completion shape ({tokens, token_logprobs, top_logprobs, text_offset}); `text_offset` carries
// the completion's byte offset across responses.
json Logprobs(const layerpipe::v1::GenerateResponse& r, const ParsedRequest& p,
              const Tokenizer* tok, int64_t* text_offset);
const char* FinishName(layerpipe::v1::FinishReason r);
json UsageJson(const layerpipe::v1::GenerateResponse& last);
// JSON text; bytes that are not UTF-8 (a token may end mid-character) become U+FFFD.
std::string Dump(const json& j);

}  // namespace lp::openai
