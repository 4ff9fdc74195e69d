// The Worker gRPC service (see worker_service.h).
#include "worker/worker_service.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/activation_chunks.h"
#include "common/grpc_status.h"
#include "common/tls.h"

namespace lp {
namespace {

const grpc::Status kLoading(grpc::StatusCode::UNAVAILABLE, "the worker is still loading its slice");
const grpc::Status kStopping(grpc::StatusCode::UNAVAILABLE, "the worker is shutting down");

// A failed step's error names the requests it carried (their ids from the coordinator), so
// that the worker's log and the coordinator's both point at them.
absl::Status NameRequests(const absl::Status& s, const layerpipe::v1::StepRequest& r) {
  std::vector<std::string> ids;
  for (const auto& seq : r.seqs()) {
    if (!seq.request_id().empty()) ids.push_back(seq.request_id());
  }
  if (ids.empty()) return s;
  return absl::Status(s.code(),
                      absl::StrCat(s.message(), " (requests ", absl::StrJoin(ids, ", "), ")"));
}

}  // namespace

using layerpipe::v1::StepRequest;
using layerpipe::v1::StepResponse;

grpc::Status WorkerService::CheckPeer(const grpc::ServerContext& ctx) const {
  return peer_name_.empty() ? grpc::Status::OK : CheckPeerName(ctx, peer_name_);
}

grpc::Status WorkerService::Handshake(grpc::ServerContext* ctx,
                                      const layerpipe::v1::HandshakeRequest*,
                                      layerpipe::v1::HandshakeResponse* response) {
  if (grpc::Status s = CheckPeer(*ctx); !s.ok()) return s;
  WorkerCore* core = core_.load();
  if (core == nullptr) return kLoading;
  if (stopping_) return kStopping;
  *response = core->Handshake();
  return grpc::Status::OK;
}

grpc::Status WorkerService::Step(grpc::ServerContext* ctx,
                                 grpc::ServerReaderWriter<StepResponse, StepRequest>* stream) {
  if (grpc::Status s = CheckPeer(*ctx); !s.ok()) return s;
  WorkerCore* core = core_.load();
  if (core == nullptr) return kLoading;
  StepRequest first, piece;
  ChunkAssembler hidden;
  std::vector<float> hidden_in, hidden_out;
  while (stream->Read(&first)) {
    if (stopping_) return kStopping;
    // Counted from its first chunk: Stop waits for the step to be answered.
    steps_running_.fetch_add(1);
    struct Done {
      std::atomic<int>& n;
      ~Done() { n.fetch_sub(1); }
    } done{steps_running_};
    // Gather the step's chunks: the first message carries the layout and ids.
    // Never more than the largest step's hidden state.
    const auto& limits = core->slice().limits();
    hidden.Reset(size_t(limits.max_step_tokens * core->slice().config().hidden_size) *
                 sizeof(float));
    const auto received = std::chrono::steady_clock::now();
    auto state = hidden.Add(first.hidden_chunk(), first.last_chunk());
    while (state == ChunkAssembler::State::kPartial && stream->Read(&piece)) {
      state = hidden.Add(piece.hidden_chunk(), piece.last_chunk());
    }
    if (core->metrics() != nullptr && !first.hidden_chunk().empty()) {
      core->metrics()->GrpcInputReceived(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - received).count());
    }
    if (state == ChunkAssembler::State::kPartial) break;  // the coordinator went away
    if (state == ChunkAssembler::State::kTooLarge) {
      // Cannot resynchronize with a peer that sends too much: end the stream.
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "hidden state larger than the step limit allows");
    }
    StepResponse response;
    response.set_step_id(first.step_id());
    absl::Status s = hidden.Floats(&hidden_in);
    if (s.ok()) s = core->Step(first, hidden_in, &hidden_out, &response);
    if (!s.ok()) {
      s = NameRequests(s, first);
      std::fprintf(stderr, "worker: step %llu failed: %s\n",
                   static_cast<unsigned long long>(first.step_id()),
                   std::string(s.message()).c_str());
    }
    SetStepError(s, &response);
    if (!response.error().empty() || core->slice().spec().head) {
      response.set_last_chunk(true);
      if (!stream->Write(response)) break;
      continue;
    }
    // Send the hidden state back in chunks.
    const std::string_view bytes(reinterpret_cast<const char*>(hidden_out.data()),
                                 hidden_out.size() * sizeof(float));
    const bool sent = ForEachChunk(bytes, kChunkBytes, [&](std::string_view piece, bool last) {
      StepResponse chunk;
      chunk.set_step_id(first.step_id());
      chunk.set_instance_id(response.instance_id());
      chunk.set_hidden_chunk(piece.data(), piece.size());
      chunk.set_last_chunk(last);
      return stream->Write(chunk);
    });
    if (!sent) break;
  }
  return grpc::Status::OK;
}

void WorkerService::Stop(int timeout_ms) {
  stopping_ = true;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (steps_running_.load() > 0 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

grpc::Status WorkerService::Release(grpc::ServerContext* ctx,
                                    const layerpipe::v1::ReleaseRequest* request,
                                    layerpipe::v1::ReleaseResponse*) {
  if (grpc::Status s = CheckPeer(*ctx); !s.ok()) return s;
  WorkerCore* core = core_.load();
  if (core == nullptr) return kLoading;
  core->Release(std::span<const int32_t>(request->slots().data(), size_t(request->slots_size())));
  return grpc::Status::OK;
}

grpc::Status WorkerService::Stats(grpc::ServerContext* ctx, const layerpipe::v1::StatsRequest*,
                                  layerpipe::v1::StatsResponse* response) {
  if (grpc::Status s = CheckPeer(*ctx); !s.ok()) return s;
  WorkerCore* core = core_.load();
  if (core == nullptr) return kLoading;
  *response = core->Stats();
  return grpc::Status::OK;
}

grpc::Status WorkerService::Connect(grpc::ServerContext* ctx,
                                    const layerpipe::v1::ConnectRequest* request,
                                    layerpipe::v1::ConnectResponse*) {
  if (grpc::Status s = CheckPeer(*ctx); !s.ok()) return s;
  WorkerCore* core = core_.load();
  if (core == nullptr) return kLoading;
  absl::Status s = core->Connect(*request);
  return ToGrpc(s);
}

}  // namespace lp
