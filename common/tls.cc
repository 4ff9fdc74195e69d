// gRPC credentials from PEM files, and the peer check (see tls.h).
#include "common/tls.h"

#include <grpc/grpc_security_constants.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lp {
namespace {

// The PEM file at `path`, the files' `field` under cluster-file `key` ("": not from the file).
absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& key,
                                    const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(key.empty() ? "" : key + ".", field, ": cannot read ", path));
  }
  return text.str();
}

// The PEM texts of files.cert and files.key.
absl::StatusOr<std::pair<std::string, std::string>> ReadCertAndKey(const TlsFiles& files,
                                                                   const std::string& key) {
  auto cert = ReadPem(files.cert, key, "cert");
  if (!cert.ok()) return cert.status();
  auto private_key = ReadPem(files.key, key, "key");
  if (!private_key.ok()) return private_key.status();
  return std::pair{*cert, *private_key};
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files,
                                                                           const std::string& key) {
  if (files.cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      files.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                       : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  auto pair = ReadCertAndKey(files, key);
  if (!pair.ok()) return pair.status();
  options.pem_key_cert_pairs.push_back({pair->second, pair->first});
  if (!files.ca.empty()) {
    auto ca = ReadPem(files.ca, key, "ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsFiles& files, const std::string& key) {
  if (files.ca.empty() && files.cert.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  if (!files.ca.empty()) {
    auto ca = ReadPem(files.ca, key, "ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  if (!files.cert.empty()) {
    auto pair = ReadCertAndKey(files, key);
    if (!pair.ok()) return pair.status();
    options.pem_cert_chain = pair->first;
    options.pem_private_key = pair->second;
  }
  return grpc::SslCredentials(options);
}

grpc::Status CheckPeerName(const grpc::ServerContext& context, const std::string& name) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  std::vector<std::string> shown;
  for (const char* property : {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME}) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
      if (std::string_view(value.data(), value.size()) == name) return grpc::Status::OK;
      shown.emplace_back(value.data(), value.size());
    }
  }
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat("only the coordinator (a certificate for '", name,
                                   "') may call this worker; the caller's certificate names ",
                                   shown.empty() ? "nothing" : absl::StrJoin(shown, ", ")));
}

bool IsLoopback(const std::string& address) {
  const std::string host = HostOf(address);
  return absl::StartsWith(host, "127.") || host == "localhost" || host == "[::1]";
}

void WarnIfExposed(const std::string& who, const std::string& address, const std::string& why) {
  if (IsLoopback(address)) return;
  std::fprintf(stderr, "warning: %s listens on %s without TLS: %s\n", who.c_str(), address.c_str(),
               why.c_str());
}

}  // namespace lp
