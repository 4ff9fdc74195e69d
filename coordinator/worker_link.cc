// The coordinator's connection to one worker (see worker_link.h).
#include "coordinator/worker_link.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/activation_chunks.h"
#include "common/checkpoint.h"
#include "common/grpc_status.h"
#include "common/protocol.h"
#include "common/sampling_params.h"

namespace lp {
namespace {

std::chrono::system_clock::time_point Deadline(int timeout_ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (!credentials) credentials = grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(address, credentials, args);
}

}  // namespace

absl::Status CheckHandshake(const layerpipe::v1::HandshakeResponse& got,
                            const WorkerExpectation& want) {
  auto mismatch = [&](const std::string& what, const auto& g, const auto& w) {
    return absl::FailedPreconditionError(absl::StrCat("worker '", want.name, "' at ", want.address,
                                                      " disagrees with the plan: its ", what,
                                                      " is ", g, ", the plan says ", w));
  };
  if (got.protocol_version() != kProtocolVersion) {
    return mismatch("protocol version", got.protocol_version(), kProtocolVersion);
  }
  if (got.name() != want.name) return mismatch("name", got.name(), want.name);
  if (got.model_fingerprint() != want.fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker '", want.name, "' at ", want.address,
        " loads another checkpoint than the coordinator: they differ in ",
        FingerprintDifference(got.model_fingerprint(), want.fingerprint),
        " (worker: ", got.model_fingerprint(), "; coordinator: ", want.fingerprint, ")"));
  }
  if (got.layer_begin() != want.layer_begin || got.layer_end() != want.layer_end) {
    return mismatch("layer range", absl::StrCat("[", got.layer_begin(), ", ", got.layer_end(), ")"),
                    absl::StrCat("[", want.layer_begin, ", ", want.layer_end, ")"));
  }
  if (got.embed() != want.embed || got.head() != want.head) {
    return mismatch("embedding/head ownership", absl::StrCat(got.embed(), "/", got.head()),
                    absl::StrCat(want.embed, "/", want.head));
  }
  if (got.device() != want.device) return mismatch("device", got.device(), want.device);
  if (got.max_batch() != want.max_batch || got.max_context() != want.max_context ||
      got.max_step_tokens() != want.max_step_tokens) {
    return mismatch(
        "limits (batch/context/step tokens)",
        absl::StrCat(got.max_batch(), "/", got.max_context(), "/", got.max_step_tokens()),
        absl::StrCat(want.max_batch, "/", want.max_context, "/", want.max_step_tokens));
  }
  if (got.kv_blocks() != want.kv_blocks || got.kv_block_tokens() != want.kv_block_tokens) {
    return mismatch("KV cache (blocks x tokens)",
                    absl::StrCat(got.kv_blocks(), " x ", got.kv_block_tokens()),
                    absl::StrCat(want.kv_blocks, " x ", want.kv_block_tokens));
  }
  return absl::OkStatus();
}

absl::Status CheckStepAnswer(const layerpipe::v1::StepResponse& got,
                             const WorkerExpectation& want) {
  if (got.sampled_size() > 0 && !want.head) {
    return absl::InternalError(
        absl::StrCat("worker '", want.name, "' sampled tokens but is not the last worker"));
  }
  for (const auto& t : got.sampled()) {
    if (t.slot() < 0 || t.slot() >= want.max_batch || t.top_ids_size() != t.top_logprobs_size() ||
        t.top_ids_size() > kMaxLogprobs) {
      return absl::InternalError(absl::StrCat(
          "worker '", want.name, "' answered with a malformed sampled token (slot ", t.slot(), ", ",
          t.top_ids_size(), " top ids, ", t.top_logprobs_size(), " top log-probabilities)"));
    }
  }
  return absl::OkStatus();
}

WorkerLink::WorkerLink(WorkerExpectation expect,
                       std::shared_ptr<grpc::ChannelCredentials> credentials)
    : expect_(std::move(expect)),
      channel_(MakeChannel(expect_.address, std::move(credentials))),
      stub_(layerpipe::v1::Worker::NewStub(channel_)) {}

WorkerLink::~WorkerLink() { ResetStream(); }

absl::Status WorkerLink::Check(int timeout_ms) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(timeout_ms));
  layerpipe::v1::HandshakeRequest req;
  req.set_protocol_version(kProtocolVersion);
  layerpipe::v1::HandshakeResponse resp;
  grpc::Status s = stub_->Handshake(&ctx, req, &resp);
  if (!s.ok()) {
    const bool timed_out = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!timed_out || ++failed_checks_ >= 2 || !up_) MarkDown();
    return absl::UnavailableError(absl::StrCat("worker '", expect_.name, "' at ", expect_.address,
                                               " is unreachable: ", s.error_message()));
  }
  failed_checks_ = 0;
  {
    std::lock_guard<std::mutex> lock(handshake_mu_);
    handshake_ = resp;
  }
  absl::Status agree = CheckHandshake(resp, expect_);
  if (!agree.ok()) {
    MarkDown();
    return agree;
  }
  // The first time the link comes up, its step stream opens now rather than at the first
  // step, which would pay for it. (After a loss the next step reopens it, as SendOnce says.)
  if (!up_ && !stale_) OpenStream();
  up_ = true;
  return absl::OkStatus();
}

void WorkerLink::MarkDown() {
  up_ = false;
  step_deadline_ns_ = 0;  // the step in progress fails; a recovered link starts clean
  stale_ = true;
  std::lock_guard<std::mutex> lock(stream_mu_);
  if (stream_context_) stream_context_->TryCancel();  // unblocks a step waiting on a dead peer
}

void WorkerLink::ResetStream() {
  std::lock_guard<std::mutex> lock(stream_mu_);
  if (stream_context_) stream_context_->TryCancel();
  if (stream_) stream_->Finish().ok();
  stream_.reset();
  stream_context_.reset();
}

void WorkerLink::OpenStream() {
  std::lock_guard<std::mutex> lock(stream_mu_);
  if (stream_) return;
  stream_context_ = std::make_unique<grpc::ClientContext>();
  stream_ = stub_->Step(stream_context_.get());
  ++stream_generation_;
}

absl::Status WorkerLink::Lost(absl::Status s) {
  if (s.code() == absl::StatusCode::kUnavailable) {
    MarkDown();  // (stale: the next step opens the stream again, not the monitor's Check)
    ResetStream();
  }
  return s;
}

absl::Status WorkerLink::Send(const layerpipe::v1::StepRequest& header,
                              std::span<const float> hidden_in) {
  if (!up_) {
    return absl::UnavailableError(absl::StrCat("worker '", expect_.name, "' is unreachable"));
  }
  const auto now = std::chrono::steady_clock::now();
  sent_.push_back(
      {now, header.ids_size(), (now + StepBudget(header.ids_size())).time_since_epoch().count()});
  step_deadline_ns_ = sent_.front().deadline_ns;
  absl::Status s = Lost(SendOnce(header, hidden_in));
  if (s.ok()) {
    sent_.back().stream = stream_generation_;
  } else if (!sent_.empty()) {  // no Receive follows a failed send
    sent_.pop_back();
    step_deadline_ns_ = sent_.empty() ? 0 : sent_.front().deadline_ns;
  }
  return s;
}

absl::Status WorkerLink::Receive(std::vector<float>* hidden_out,
                                 std::vector<SampledToken>* sampled) {
  // Its answer comes on the stream it was sent on, or never (the stream was replaced).
  absl::Status s = !sent_.empty() && sent_.front().stream != stream_generation_
                       ? Lost(LostMidStep())
                       : ReceiveOnce(hidden_out, sampled);
  const auto now = std::chrono::steady_clock::now();
  // A step sent behind another starts when that one is answered.
  if (s.ok() && !sent_.empty() && sent_.front().tokens > 0) {
    const double ms =
        std::chrono::duration<double, std::milli>(now - std::max(sent_.front().at, answered_at_))
            .count();
    const double per_token = ms / double(sent_.front().tokens), old = ms_per_token_;
    ms_per_token_ = old < 0 ? per_token : 0.8 * old + 0.2 * per_token;
  }
  answered_at_ = now;
  Answered();
  return s;  // an overdue step fails as lost: the monitor marked the link down (and logs why)
}

void WorkerLink::Answered() {
  if (!sent_.empty()) sent_.pop_front();
  if (sent_.empty()) {
    step_deadline_ns_ = 0;
    return;
  }
  // The step behind starts now: its budget counts from here, not from when it was sent.
  SentStep& next = sent_.front();
  next.deadline_ns = std::max(
      next.deadline_ns,
      (std::chrono::steady_clock::now() + StepBudget(next.tokens)).time_since_epoch().count());
  step_deadline_ns_ = next.deadline_ns;
}

std::chrono::milliseconds WorkerLink::StepBudget(int64_t tokens) const {
  const double per_token = ms_per_token_;
  if (per_token < 0) return kFirstSteps;
  return kStepFloor + std::chrono::milliseconds(int64_t(10.0 * per_token * double(tokens)));
}

bool WorkerLink::MarkDownIfOverdue() {
  int64_t deadline = step_deadline_ns_;
  if (deadline == 0 || !up_ ||
      std::chrono::steady_clock::now().time_since_epoch().count() <= deadline) {
    return false;
  }
  if (!step_deadline_ns_.compare_exchange_strong(deadline, 0)) return false;
  MarkDown();
  return true;
}

absl::Status WorkerLink::SendOnce(const layerpipe::v1::StepRequest& header,
                                  std::span<const float> hidden_in) {
  if (stale_.exchange(false)) {
    // A new stream must not take a step while an answer is due on the old one.
    if (sent_.size() > 1) {
      stale_ = true;
      return LostMidStep();
    }
    ResetStream();
  }
  OpenStream();
  // The header with the first piece of the hidden state, then the other pieces.
  const std::string_view bytes(reinterpret_cast<const char*>(hidden_in.data()),
                               hidden_in.size_bytes());
  layerpipe::v1::StepRequest msg = header;
  bool first = true;
  const bool sent = ForEachChunk(bytes, kChunkBytes, [&](std::string_view piece, bool last) {
    if (!first) {
      msg.Clear();
      msg.set_step_id(header.step_id());
    }
    first = false;
    msg.set_hidden_chunk(piece.data(), piece.size());
    msg.set_last_chunk(last);
    return stream_->Write(msg);
  });
  if (!sent) return LostMidStep();
  return absl::OkStatus();
}

absl::Status WorkerLink::ReceiveOnce(std::vector<float>* hidden_out,
                                     std::vector<SampledToken>* sampled) {
  if (!stream_) return Lost(LostMidStep());
  // Until the last chunk.
  // Never more than the largest step's hidden state (the worker's hidden size is the
  // checkpoint's: the handshake compared fingerprints).
  const int64_t hidden_size = handshake().hidden_size();
  received_.Reset(size_t(expect_.max_step_tokens * std::max<int64_t>(hidden_size, 0)) *
                  sizeof(float));
  layerpipe::v1::StepResponse resp;
  absl::Status malformed;  // read on to the last chunk even so: the next step's answer follows
  do {
    if (!stream_->Read(&resp)) return Lost(LostMidStep());
    // The worker's own error, with its code: it answered, so it is not lost, whatever the code.
    if (absl::Status s = StepError(resp, absl::StrCat("worker '", expect_.name, "'")); !s.ok()) {
      return s;
    }
    received_.Add(resp.hidden_chunk(), resp.last_chunk());
    if (malformed.ok()) malformed = CheckStepAnswer(resp, expect_);
    if (!malformed.ok()) continue;
    for (const auto& t : resp.sampled()) {
      sampled->push_back({t.slot(), t.id(), t.logprob(),
                          std::vector<int32_t>(t.top_ids().begin(), t.top_ids().end()),
                          std::vector<float>(t.top_logprobs().begin(), t.top_logprobs().end())});
    }
  } while (!resp.last_chunk());
  if (!malformed.ok()) return malformed;
  if (received_.state() == ChunkAssembler::State::kTooLarge) {
    return absl::InternalError(absl::StrCat("worker '", expect_.name,
                                            "' answered with a hidden state larger than a step's"));
  }
  if (!expect_.head) {
    absl::Status s = received_.Floats(hidden_out);
    if (!s.ok()) {
      return absl::InternalError(absl::StrCat("worker '", expect_.name, "': ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status WorkerLink::LostMidStep() const {
  return absl::UnavailableError(
      absl::StrCat("worker '", expect_.name, "' at ", expect_.address, " was lost mid-step"));
}

absl::StatusOr<layerpipe::v1::StatsResponse> WorkerLink::Stats(int timeout_ms) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(timeout_ms));
  layerpipe::v1::StatsRequest req;
  layerpipe::v1::StatsResponse resp;
  grpc::Status s = stub_->Stats(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, absl::StrCat("worker '", expect_.name, "'"));
  return resp;
}

absl::Status WorkerLink::ReleaseAll(int timeout_ms) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(timeout_ms));
  layerpipe::v1::ReleaseRequest req;
  for (int64_t s = 0; s < expect_.max_batch; ++s) req.add_slots(int32_t(s));
  layerpipe::v1::ReleaseResponse resp;
  grpc::Status s = stub_->Release(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, absl::StrCat("worker '", expect_.name, "'"));
  return absl::OkStatus();
}

layerpipe::v1::HandshakeResponse WorkerLink::handshake() const {
  std::lock_guard<std::mutex> lock(handshake_mu_);
  return handshake_;
}

absl::Status WorkerLink::Connect(const layerpipe::v1::HandshakeResponse& prev, int timeout_ms) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(timeout_ms));
  layerpipe::v1::ConnectRequest req;
  *req.mutable_prev_ipc_buffers() = prev.ipc_buffers();
  *req.mutable_prev_ipc_events() = prev.ipc_events();
  req.set_prev_instance_id(prev.instance_id());
  req.set_prev_name(prev.name());
  layerpipe::v1::ConnectResponse resp;
  grpc::Status s = stub_->Connect(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, absl::StrCat("worker '", expect_.name, "': CUDA IPC"));
  return absl::OkStatus();
}

}  // namespace lp
