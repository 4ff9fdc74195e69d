// The client commands' connection to the coordinator (see client.h).
#include "cli/client.h"

#include "cli/util.h"
#include "common/tls.h"

namespace lp::cli {

void AddClientOptions(CLI::App* cmd, ClientOptions* o) {
  cmd->add_option("--endpoint", o->endpoint, "coordinator host:port")->required();
  cmd->add_option("--ca", o->ca,
                  "PEM file of the CA the server's certificate comes from: TLS (the system's "
                  "roots when only --cert is given)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cert", o->cert,
                  "PEM file of this client's certificate (for a server that "
                  "asks for one)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--key", o->key, "PEM file of that certificate's private key")
      ->check(CLI::ExistingFile);
  cmd->add_option("--token", o->token, "API token (default: $LAYERPIPE_API_TOKEN)")
      ->envname("LAYERPIPE_API_TOKEN");
}

std::shared_ptr<grpc::ChannelCredentials> Credentials(const ClientOptions& o) {
  if (o.cert.empty() != o.key.empty()) {
    Fail(absl::InvalidArgumentError("--cert and --key go together"), 2);
  }
  auto credentials = ChannelCredentials({o.ca, o.cert, o.key}, "");
  if (!credentials.ok()) Fail(credentials.status(), 2);
  return *credentials;
}

std::shared_ptr<grpc::Channel> OpenChannel(const ClientOptions& o) {
  return grpc::CreateChannel(CheckEndpoint(o.endpoint), Credentials(o));
}

void PrepareCall(const ClientOptions& o, grpc::ClientContext& ctx,
                 std::chrono::milliseconds timeout) {
  if (!o.token.empty()) ctx.AddMetadata("authorization", "Bearer " + o.token);
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

}  // namespace lp::cli
