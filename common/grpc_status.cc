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

}  // namespace lp
