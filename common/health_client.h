// Asking a server's grpc.health.v1 status (used by `layerpipe serve` and the tests).
#pragma once

#include <string>

namespace lp {

enum class Health { kServing, kNotServing, kUnreachable };

// Checks the overall ("") status of the server at `address`, waiting at most `timeout_ms`.
Health CheckHealth(const std::string& address, int timeout_ms);

}  // namespace lp
