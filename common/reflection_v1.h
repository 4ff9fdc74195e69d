// grpc.reflection.v1 for our servers (Debian 12's gRPC plugin serves only v1alpha): lists the
// services and answers file and symbol requests from the protobuf descriptors linked into the
// program, with their dependencies. Also links in the descriptors of grpc.health.v1, which the
// library's health service does not register, so reflection can resolve it.
#pragma once

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace lp {

class ReflectionV1 final : public grpc::reflection::v1::ServerReflection::Service {
 public:
  // `services`: the full names this server serves (health and reflection are added).
  explicit ReflectionV1(std::vector<std::string> services);

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                               grpc::reflection::v1::ServerReflectionRequest>* stream) override;

 private:
  std::vector<std::string> services_;
};

}  // namespace lp
