// TLS and who is calling, for the gRPC links: credentials from the cluster file's PEM files
// (TlsFiles), and the check that a worker's caller is the coordinator.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/cluster_config.h"

namespace lp {

// A server's credentials: TLS with files.cert and files.key; with files.ca, clients must show a
// certificate from that CA (mutual TLS). Plaintext when files.cert is empty. An error names
// `key` (the cluster-file key the files come from) and the file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files,
                                                                           const std::string& key);

// A client's credentials: the server's certificate checked against files.ca (the system's
// roots when empty), and this side's certificate when files.cert is given. Plaintext when
// files has neither a CA nor a certificate.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsFiles& files, const std::string& key);

// OK when the caller showed a certificate (verified by the server's TLS) whose common name or a
// subject alternative name is `name`; PERMISSION_DENIED otherwise, saying what it showed.
grpc::Status CheckPeerName(const grpc::ServerContext& context, const std::string& name);

// Whether `address` (host:port) is a loopback address.
bool IsLoopback(const std::string& address);

// Prints "warning: WHO listens on ADDRESS without TLS: WHY" unless `address` is loopback.
void WarnIfExposed(const std::string& who, const std::string& address, const std::string& why);

}  // namespace lp
