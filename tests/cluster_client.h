// A client of a test cluster (cluster_harness.h) through the public gRPC API: one Generate
// stream read to its end, a request for token ids, the workers' active sequences.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster_harness.h"
#include "layerpipe/v1/layerpipe.grpc.pb.h"

namespace lp::testing {

struct Outcome {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  layerpipe::v1::FinishReason finish = layerpipe::v1::FINISH_REASON_UNSPECIFIED;
  int logprob_steps = 0;
};

inline std::unique_ptr<layerpipe::v1::Inference::Stub> Stub(const Cluster& c) {
  return layerpipe::v1::Inference::NewStub(
      grpc::CreateChannel(c.endpoint(), grpc::InsecureChannelCredentials()));
}

inline Outcome Generate(const Cluster& c, const layerpipe::v1::GenerateRequest& req,
                        int timeout_s = 60) {
  auto stub = Stub(c);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  auto reader = stub->Generate(&ctx, req);
  Outcome out;
  layerpipe::v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    out.ids.insert(out.ids.end(), resp.token_ids().begin(), resp.token_ids().end());
    out.text += resp.text();
    out.logprob_steps += resp.logprobs_size();
    if (resp.finish_reason()) out.finish = resp.finish_reason();
  }
  out.status = reader->Finish();
  return out;
}

inline layerpipe::v1::GenerateRequest Ids(const std::vector<int32_t>& ids, int max_tokens) {
  layerpipe::v1::GenerateRequest r;
  r.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  r.set_max_tokens(max_tokens);
  r.set_ignore_eos(true);
  return r;
}

// Each worker's active sequences, in pipeline order (empty when ListWorkers fails).
inline std::vector<int64_t> ActiveSequences(const Cluster& c) {
  auto stub = Stub(c);
  grpc::ClientContext ctx;
  layerpipe::v1::ListWorkersResponse resp;
  std::vector<int64_t> out;
  if (!stub->ListWorkers(&ctx, {}, &resp).ok()) return out;
  for (const auto& w : resp.workers()) out.push_back(w.active_sequences());
  return out;
}

// Polls ListWorkers until every worker holds no sequence (or 5 s pass); returns the last view.
inline std::vector<int64_t> WaitAllReleased(const Cluster& c, size_t workers) {
  std::vector<int64_t> active;
  for (int i = 0; i < 100; ++i) {
    active = ActiveSequences(c);
    if (active == std::vector<int64_t>(workers, 0)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return active;
}

}  // namespace lp::testing
