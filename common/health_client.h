// Asking a server's grpc.health.v1 status (used by `layerpipe serve` and the tests).
#pragma once

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

namespace lp {

enum class Health { kServing, kNotServing, kUnreachable };

// Checks the status of `service` ("": the server's overall status) at `address`, waiting at
// most `timeout_ms`, over a channel with `credentials` (plaintext when null); kUnreachable also
// when the server does not know the service.
Health CheckHealth(const std::string& address, int timeout_ms, const std::string& service = "",
                   std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

}  // namespace lp
