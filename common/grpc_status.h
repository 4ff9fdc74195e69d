// The one conversion between absl::Status (what modules return to each other) and grpc::Status
// (what crosses an RPC edge), both ways. The two share their codes' numbers, so a code survives
// the round trip: a client sees INVALID_ARGUMENT for its own bad input, not INTERNAL.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "absl/status/status.h"

namespace lp {

grpc::Status ToGrpc(const absl::Status& s);
// `context`, when given (e.g. "worker 'w0'"), goes before the message: "context: message".
absl::Status FromGrpc(const grpc::Status& s, std::string_view context = {});

}  // namespace lp
