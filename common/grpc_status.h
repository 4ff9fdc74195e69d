// The one conversion between absl::Status (what modules return to each other) and grpc::Status
// (what crosses an RPC edge), both ways, and of a worker's step error (carried in its
// StepResponse, not as the stream's status). The codes keep their numbers across, so a client
// sees INVALID_ARGUMENT for its own bad input, not INTERNAL.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "absl/status/status.h"
#include "layerpipe/v1/worker.pb.h"

namespace lp {

grpc::Status ToGrpc(const absl::Status& s);
// `context`, when given (e.g. "worker 'w0'"), goes before the message: "context: message".
absl::Status FromGrpc(const grpc::Status& s, std::string_view context = {});

// A failed step's status into its response (nothing for OK), and back (OK when the response
// carries no error; `context` as for FromGrpc).
void SetStepError(const absl::Status& s, layerpipe::v1::StepResponse* response);
absl::Status StepError(const layerpipe::v1::StepResponse& response, std::string_view context = {});

}  // namespace lp
