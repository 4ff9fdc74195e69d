// A worker's logic, without the network (see worker_core.h).
#include "worker/worker_core.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/sampling_params.h"
#include "common/status.h"
#include "engine/sample_steps.h"

namespace lp {

namespace {

// Host name and boot id: two workers with the same one can use CUDA IPC between them.
std::string HostId() {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(boot, id);
  return absl::StrCat(name, "/", id);
}

// How long a worker waits for its predecessor to queue a step (a dead or hung one never does).
constexpr std::chrono::milliseconds kHandoverTimeout{5000};

// The bounds the coordinator puts on a request (request_validation.cc), checked again: a step
// from the network must not reach the sampler with a min_p above 1 (no token left to draw) or
// a NaN temperature. 0 means "unset" for top_p and the repetition penalty.
absl::Status CheckSampling(const layerpipe::v1::SamplingRequest& p) {
  const float penalty = p.repetition_penalty();
  if (!std::isfinite(p.temperature()) || p.temperature() < 0 || p.top_k() < 0 ||
      !(p.top_p() >= 0 && p.top_p() <= 1) || !(p.min_p() >= 0 && p.min_p() <= 1) ||
      !(penalty == 0 || (penalty >= 0.01f && penalty <= 100)) || p.logprobs() < 0 ||
      p.logprobs() > kMaxLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling parameters out of range (temperature ", p.temperature(), ", top_k ",
                     p.top_k(), ", top_p ", p.top_p(), ", min_p ", p.min_p(),
                     ", repetition_penalty ", penalty, ", logprobs ", p.logprobs(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

WorkerCore::WorkerCore(std::unique_ptr<Slice> slice, WorkerIdentity identity, bool export_ipc)
    : slice_(std::move(slice)), identity_(std::move(identity)), host_id_(HostId()) {
  slots_.resize(size_t(slice_->limits().max_batch));
  written_blocks_.assign(size_t(slice_->kv_shape().num_blocks), false);
  if (slice_->spec().head) {
    const int64_t vocab = slice_->config().vocab_size;
    for (auto& s : slots_) {
      s.is_seen.assign(size_t(vocab), false);
      s.seen.reserve(size_t(std::min(vocab, slice_->limits().max_context)));
    }
  }
  instance_id_ = std::random_device{}() * 0x100000000ull + std::random_device{}();
  if (export_ipc && !slice_->spec().head) {
    // The ring the next worker reads from (the backend may not be able to: then none).
    const auto& l = slice_->limits();
    auto handover = Handover::Create(identity_.name, instance_id_, kIpcRing);
    if (!handover.ok()) {
      std::fprintf(stderr, "worker %s: no CUDA IPC to the next worker (gRPC instead): %s\n",
                   identity_.name.c_str(), std::string(handover.status().message()).c_str());
      return;
    }
    auto ring =
        IpcRing::Export(slice_->backend(), kIpcRing,
                        size_t(l.max_step_tokens * slice_->config().hidden_size) * sizeof(float));
    if (ring.ok()) {
      ring_out_ = std::move(*ring);
      handover_out_ = std::move(*handover);
    }
  }
}

absl::Status WorkerCore::Connect(const layerpipe::v1::ConnectRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  IpcExports peer;
  peer.buffers.assign(request.prev_ipc_buffers().begin(), request.prev_ipc_buffers().end());
  peer.events.assign(request.prev_ipc_events().begin(), request.prev_ipc_events().end());
  ring_in_.reset();
  handover_in_.reset();
  ASSIGN_OR_RETURN(auto ring, IpcRing::Import(slice_->backend(), peer));
  ASSIGN_OR_RETURN(handover_in_,
                   Handover::Open(request.prev_name(), request.prev_instance_id(), kIpcRing));
  ring_in_ = std::move(ring);
  ipc_peer_instance_ = request.prev_instance_id();
  return absl::OkStatus();
}

layerpipe::v1::HandshakeResponse WorkerCore::Handshake() const {
  layerpipe::v1::HandshakeResponse r;
  const SliceSpec& spec = slice_->spec();
  r.set_protocol_version(kProtocolVersion);
  r.set_name(identity_.name);
  r.set_model_fingerprint(identity_.fingerprint);
  r.set_layer_begin(spec.begin);
  r.set_layer_end(spec.end);
  r.set_embed(spec.embed);
  r.set_head(spec.head);
  r.set_dtype(identity_.dtype);
  r.set_device(identity_.device);
  r.set_max_batch(slice_->limits().max_batch);
  r.set_max_context(slice_->limits().max_context);
  r.set_max_step_tokens(slice_->limits().max_step_tokens);
  r.set_hidden_size(slice_->config().hidden_size);
  r.set_kv_blocks(slice_->kv_shape().num_blocks);
  r.set_kv_block_tokens(slice_->kv_shape().block_tokens);
  r.set_host_id(host_id_);
  if (ring_out_) {
    for (const auto& b : ring_out_->exports().buffers) r.add_ipc_buffers(b);
    for (const auto& e : ring_out_->exports().events) r.add_ipc_events(e);
  }
  r.set_instance_id(instance_id_);
  return r;
}

absl::Status WorkerCore::Step(const layerpipe::v1::StepRequest& request,
                              std::span<const float> hidden_in, std::vector<float>* hidden_out,
                              layerpipe::v1::StepResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto start = std::chrono::steady_clock::now();
  ipc_wait_s_ = -1;
  const absl::Status s = StepLocked(request, hidden_in, hidden_out, response);
  if (metrics_ != nullptr && s.ok() && request.seqs_size() > 0) {
    metrics_->StepDone(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
        request.ids_size(), request.ids_size() == request.seqs_size(), ipc_wait_s_);
  }
  // The next worker may already wait for this step's slot: tell it, success or not.
  const int out_slot = request.has_ipc_out_slot() ? request.ipc_out_slot() : -1;
  if (handover_out_ && out_slot >= 0 && out_slot < kIpcRing) {
    handover_out_->Post(out_slot, request.step_id(), s.ok());
  }
  return s;
}

absl::Status WorkerCore::StepLocked(const layerpipe::v1::StepRequest& request,
                                    std::span<const float> hidden_in,
                                    std::vector<float>* hidden_out,
                                    layerpipe::v1::StepResponse* response) {
  response->set_instance_id(instance_id_);
  for (int32_t slot : request.release_slots()) ReleaseLocked(slot);
  if (request.seqs_size() == 0) {
    hidden_out->clear();
    return absl::OkStatus();  // a step that only frees slots
  }
  // A chunk continues its slot's sequence exactly where the cache ends, or starts a new one:
  // from position 0, or after a cached prefix whose blocks this worker wrote (the slot may still
  // look taken: the release of a step that failed before reaching this stage never came).
  // Anything else means the coordinator and this worker disagree (e.g. the worker restarted).
  const KvCacheShape& kv = slice_->kv_shape();
  for (const auto& s : request.seqs()) {
    if (s.has_sampling()) RETURN_IF_ERROR(CheckSampling(s.sampling()));
    // Forward refuses these as malformed.
    if (s.slot() < 0 || size_t(s.slot()) >= slots_.size() || s.start_pos() < 0 ||
        s.start_pos() >= slice_->limits().max_context) {
      continue;
    }
    if (s.prefix_ids_size() != 0 && s.prefix_ids_size() != s.start_pos()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a chunk at position ", s.start_pos(), " carries ", s.prefix_ids_size(), " prefix ids"));
    }
    const SlotState& slot = slots_[size_t(s.slot())];
    if (s.start_pos() == 0 || s.start_pos() == slot.positions) continue;
    const int64_t prefix = KvBlocksFor(s.start_pos(), kv.block_tokens);
    const bool cached_prefix =
        s.blocks_size() >= prefix &&
        std::all_of(s.blocks().begin(), s.blocks().begin() + prefix, [&](int32_t b) {
          return b >= 0 && b < kv.num_blocks && written_blocks_[size_t(b)];
        });
    if (!cached_prefix) {
      return absl::FailedPreconditionError(absl::StrCat(
          "slot ", s.slot(), " holds ", slot.positions, " positions; a step at position ",
          s.start_pos(), " cannot follow (was this worker restarted?)"));
    }
  }
  layout_.seqs.resize(size_t(request.seqs_size()));
  for (int i = 0; i < request.seqs_size(); ++i) {
    const auto& s = request.seqs(i);
    SeqChunk& chunk = layout_.seqs[size_t(i)];
    chunk.slot = s.slot();
    chunk.start_pos = s.start_pos();
    chunk.n_tokens = s.n_tokens();
    chunk.blocks.assign(s.blocks().begin(), s.blocks().end());
  }
  if (request.ids_size() != layout_.total_tokens()) {
    return absl::InvalidArgumentError(absl::StrCat("step has ", layout_.total_tokens(),
                                                   " tokens but ", request.ids_size(), " ids"));
  }
  const bool head = slice_->spec().head;
  RETURN_IF_ERROR(FillSampledBefore(request));
  std::span<const int32_t> ids(ids_);
  // The last slice's logits stay on the backend, which samples.
  std::vector<float>* out = head ? nullptr : hidden_out;
  // Hidden states from / to a neighbour on the device (CUDA IPC) stay on the backend.
  const int in_slot = request.has_ipc_in_slot() ? request.ipc_in_slot() : -1;
  const int out_slot = request.has_ipc_out_slot() ? request.ipc_out_slot() : -1;
  if (in_slot >= kIpcRing || out_slot >= (ring_out_ ? ring_out_->slots() : 0)) {
    return absl::InvalidArgumentError("IPC ring slot out of range");
  }
  // Data from a previous worker other than the one whose ring is open (it restarted) must not
  // be read: the ring it wrote is not the one mapped here.
  if (in_slot >= 0 && (!ring_in_ || request.ipc_in_instance() != ipc_peer_instance_)) {
    return absl::FailedPreconditionError(
        "no CUDA IPC connection to this instance of the previous worker (did it restart?)");
  }
  if (in_slot >= 0 && in_slot >= ring_in_->slots()) {
    return absl::InvalidArgumentError("IPC ring slot out of the previous worker's ring");
  }
  KeepOnBackend keep;
  if (in_slot >= 0) {
    // The coordinator may hand this worker a step before the previous one has queued it, and
    // a stream waits for an event's latest record: wait on the host until the record is queued.
    const auto wait_start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(handover_in_->Wait(in_slot, request.step_id(), kHandoverTimeout));
    ipc_wait_s_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count();
    keep.fill_input = [&](const Tensor& hidden) { ring_in_->Receive(in_slot, hidden); };
  }
  if (out_slot >= 0) {
    keep.take_output = [&](const Tensor& hidden) { ring_out_->Send(out_slot, hidden); };
  }
  RETURN_IF_ERROR(slice_->Forward(layout_, ids, hidden_in, out, keep));

  // Bookkeeping after success only.
  for (const SeqChunk& s : layout_.seqs) {
    const int64_t end = int64_t(s.start_pos) + s.n_tokens;
    for (int64_t b = s.start_pos / kv.block_tokens; b < KvBlocksFor(end, kv.block_tokens); ++b) {
      written_blocks_[size_t(KvBlockOf(s, b, kv.max_blocks_per_seq))] = true;
    }
  }
  int64_t offset = 0;
  for (const auto& s : request.seqs()) {
    SlotState& slot = slots_[size_t(s.slot())];
    if (s.start_pos() == 0 || s.start_pos() != slot.positions) slot.ForgetSeen();  // a new one
    slot.active = true;
    slot.positions = int64_t(s.start_pos()) + s.n_tokens();
    if (head) {  // the repetition penalty's seen ids: a cached prefix's, then the chunk's
      for (int32_t id : s.prefix_ids()) slot.See(id);
      for (int32_t id : ids.subspan(size_t(offset), size_t(s.n_tokens()))) slot.See(id);
    }
    offset += s.n_tokens();
  }
  ++steps_;
  if (!head) return absl::OkStatus();

  return SampleStep(request, response);
}

absl::Status WorkerCore::FillSampledBefore(const layerpipe::v1::StepRequest& request) {
  ids_.assign(request.ids().begin(), request.ids().end());
  int64_t offset = 0;
  for (const auto& s : request.seqs()) {
    const int64_t at = offset;
    offset += s.n_tokens();
    if (s.n_tokens() != 1 || at < 0 || at >= int64_t(ids_.size()) ||
        ids_[size_t(at)] != kSampledBefore) {
      continue;  // (Forward refuses malformed chunks, and negative ids)
    }
    if (!slice_->spec().embed || !slice_->spec().head) {
      return absl::InvalidArgumentError(
          "a step ahead of its sampled tokens, sent to a worker that does not both embed and "
          "sample");
    }
    // Forward refuses these.
    if (s.slot() < 0 || size_t(s.slot()) >= slots_.size() || s.start_pos() <= 0) continue;
    // Without the sample, this worker and the coordinator disagree, as after a restart.
    if (slots_[size_t(s.slot())].sampled_at != s.start_pos()) {
      return absl::FailedPreconditionError(absl::StrCat("slot ", s.slot(),
                                                        ": no token sampled here for position ",
                                                        s.start_pos(), " to continue from"));
    }
    ids_[size_t(at)] = slots_[size_t(s.slot())].sampled;
  }
  return absl::OkStatus();
}

absl::Status WorkerCore::SampleStep(const layerpipe::v1::StepRequest& request,
                                    layerpipe::v1::StepResponse* response) {
  sample_inputs_.clear();
  for (const auto& s : request.seqs()) {
    const auto& p = s.sampling();
    SampleInput in;
    in.params = {p.temperature(),
                 p.top_k(),
                 p.top_p() > 0 ? p.top_p() : 1.0f,
                 p.min_p(),
                 p.repetition_penalty() > 0 ? p.repetition_penalty() : 1.0f,
                 p.seed(),
                 p.logprobs()};
    // The draw depends on (seed, position) only: the same alone or in any batch.
    in.position = int64_t(s.start_pos()) + s.n_tokens();  // of the token chosen
    if (PenaltyIsOn(in.params.repetition_penalty)) in.seen = slots_[size_t(s.slot())].seen;
    sample_inputs_.push_back(in);
  }
  std::vector<SampleResult>& results = sample_results_;
  RETURN_IF_ERROR(slice_->Sample(sample_inputs_, &results));
  for (int i = 0; i < request.seqs_size(); ++i) {
    const auto& s = request.seqs(i);
    if (!s.has_sampling()) continue;
    SlotState& slot = slots_[size_t(s.slot())];
    slot.sampled = results[size_t(i)].id;
    slot.sampled_at = int64_t(s.start_pos()) + s.n_tokens();
    auto* out = response->add_sampled();
    out->set_slot(s.slot());
    out->set_id(results[size_t(i)].id);
    out->set_logprob(results[size_t(i)].logprob);
    for (const auto& t : results[size_t(i)].top) {
      out->add_top_ids(t.id);
      out->add_top_logprobs(t.logprob);
    }
  }
  return absl::OkStatus();
}

void WorkerCore::Release(std::span<const int32_t> slots) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int32_t s : slots) ReleaseLocked(s);
}

void WorkerCore::ReleaseLocked(int32_t s) {
  if (s < 0 || size_t(s) >= slots_.size()) return;
  slots_[size_t(s)].active = false;
  slots_[size_t(s)].positions = 0;
  slots_[size_t(s)].sampled_at = -1;
  slots_[size_t(s)].ForgetSeen();
}

layerpipe::v1::StatsResponse WorkerCore::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  layerpipe::v1::StatsResponse r;
  for (const auto& s : slots_) {
    if (!s.active) continue;
    r.set_active_sequences(r.active_sequences() + 1);
    r.set_cached_tokens(r.cached_tokens() + s.positions);
  }
  r.set_steps(steps_);
  return r;
}

}  // namespace lp
