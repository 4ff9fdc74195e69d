// How the client commands (generate, status, load-test) reach the coordinator's public API:
// --endpoint, and for a cluster with coordinator.api_tls / coordinator.auth, --ca, --cert, --key
// and --token.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"

namespace lp::cli {

struct ClientOptions {
  std::string endpoint;       // host:port
  std::string ca, cert, key;  // PEM files: TLS when ca or cert is given
  std::string token;          // the API token (--token, else $LAYERPIPE_API_TOKEN)
};

// Adds --endpoint (required), --ca, --cert, --key and --token to `cmd`.
void AddClientOptions(CLI::App* cmd, ClientOptions* o);
// The channel's credentials (exits with an error when a file cannot be read).
std::shared_ptr<grpc::ChannelCredentials> Credentials(const ClientOptions& o);
// A channel to o.endpoint (exits on a bad endpoint or file).
std::shared_ptr<grpc::Channel> OpenChannel(const ClientOptions& o);
// Readies a call: the token, if any, and a deadline `timeout` from now.
void PrepareCall(const ClientOptions& o, grpc::ClientContext& ctx,
                 std::chrono::milliseconds timeout);

}  // namespace lp::cli
