// absl::Status <-> grpc::Status (see grpc_status.h).
#include "common/grpc_status.h"

#include <string>

namespace lp {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode(int(s.code())), std::string(s.message()));
}

absl::Status FromGrpc(const grpc::Status& s, std::string_view context) {
  if (s.ok()) return absl::OkStatus();
  const auto code = absl::StatusCode(int(s.error_code()));
  if (context.empty()) return absl::Status(code, s.error_message());
  return absl::Status(code, std::string(context) + ": " + s.error_message());
}

void SetStepError(const absl::Status& s, layerpipe::v1::StepResponse* response) {
  if (s.ok()) return;
  // Never empty: an empty error reads as success.
  response->set_error(s.message().empty() ? absl::StatusCodeToString(s.code())
                                          : std::string(s.message()));
  response->set_error_code(int(s.code()));
}

absl::Status StepError(const layerpipe::v1::StepResponse& response, std::string_view context) {
  if (response.error().empty() && response.error_code() == 0) return absl::OkStatus();
  const int code = response.error_code();
  const auto status_code = code > 0 && code <= int(absl::StatusCode::kUnauthenticated)
                               ? absl::StatusCode(code)
                               : absl::StatusCode::kInternal;
  if (context.empty()) return absl::Status(status_code, response.error());
  return absl::Status(status_code, std::string(context) + ": " + response.error());
}

}  // namespace lp
