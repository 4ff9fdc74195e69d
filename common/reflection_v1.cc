// grpc.reflection.v1 (see reflection_v1.h).
#include "common/reflection_v1.h"

#include <set>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/health/v1/health.pb.h"

namespace lp {
namespace {

namespace pb = google::protobuf;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

// `file` and, before it, every file it imports that `sent` does not hold yet.
void AddFile(const pb::FileDescriptor* file, std::set<std::string>* sent,
             grpc::reflection::v1::FileDescriptorResponse* out) {
  if (!sent->insert(file->name()).second) return;
  for (int i = 0; i < file->dependency_count(); ++i) AddFile(file->dependency(i), sent, out);
  pb::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(out->add_file_descriptor_proto());
}

void SetError(grpc::StatusCode code, const std::string& message, ServerReflectionResponse* r) {
  r->mutable_error_response()->set_error_code(int(code));
  r->mutable_error_response()->set_error_message(message);
}

}  // namespace

ReflectionV1::ReflectionV1(std::vector<std::string> services) : services_(std::move(services)) {
  // Links health.proto's descriptors into the program (and so into the generated pool).
  grpc::health::v1::HealthCheckRequest::descriptor();
  services_.push_back("grpc.health.v1.Health");
  services_.push_back("grpc.reflection.v1.ServerReflection");
  services_.push_back("grpc.reflection.v1alpha.ServerReflection");
}

grpc::Status ReflectionV1::ServerReflectionInfo(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<ServerReflectionResponse, ServerReflectionRequest>* stream) {
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  ServerReflectionRequest req;
  std::set<std::string> sent;  // files this stream has sent (clients cache them)
  while (stream->Read(&req)) {
    ServerReflectionResponse resp;
    resp.set_valid_host(req.host());
    *resp.mutable_original_request() = req;
    const pb::FileDescriptor* file = nullptr;
    switch (req.message_request_case()) {
      case ServerReflectionRequest::kListServices:
        for (const auto& name : services_) {
          resp.mutable_list_services_response()->add_service()->set_name(name);
        }
        break;
      case ServerReflectionRequest::kFileByFilename:
        file = pool->FindFileByName(req.file_by_filename());
        break;
      case ServerReflectionRequest::kFileContainingSymbol:
        file = pool->FindFileContainingSymbol(req.file_containing_symbol());
        break;
      case ServerReflectionRequest::kFileContainingExtension: {
        const auto* type =
            pool->FindMessageTypeByName(req.file_containing_extension().containing_type());
        const auto* ext = type == nullptr
                              ? nullptr
                              : pool->FindExtensionByNumber(
                                    type, req.file_containing_extension().extension_number());
        if (ext != nullptr) file = ext->file();
        break;
      }
      case ServerReflectionRequest::kAllExtensionNumbersOfType: {
        const auto* type = pool->FindMessageTypeByName(req.all_extension_numbers_of_type());
        if (type == nullptr) {
          SetError(grpc::StatusCode::NOT_FOUND, "type not found", &resp);
          break;
        }
        std::vector<const pb::FieldDescriptor*> extensions;
        pool->FindAllExtensions(type, &extensions);
        auto* numbers = resp.mutable_all_extension_numbers_response();
        numbers->set_base_type_name(type->full_name());
        for (const auto* e : extensions) numbers->add_extension_number(e->number());
        break;
      }
      default:
        SetError(grpc::StatusCode::UNIMPLEMENTED, "unknown request", &resp);
    }
    const bool wants_file =
        req.message_request_case() == ServerReflectionRequest::kFileByFilename ||
        req.message_request_case() == ServerReflectionRequest::kFileContainingSymbol ||
        req.message_request_case() == ServerReflectionRequest::kFileContainingExtension;
    if (wants_file && file == nullptr) {
      SetError(grpc::StatusCode::NOT_FOUND, "not found", &resp);
    } else if (file != nullptr) {
      std::set<std::string> this_time = sent;
      this_time.erase(file->name());  // the file asked for goes out again if asked again
      AddFile(file, &this_time, resp.mutable_file_descriptor_response());
      sent = this_time;
    }
    if (!stream->Write(resp)) break;
  }
  return grpc::Status::OK;
}

}  // namespace lp
