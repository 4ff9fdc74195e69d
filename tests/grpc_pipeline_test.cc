// GrpcPipeline's stage driving against fake workers: gRPC Worker services in this process on
// loopback ports that claim to be GPU workers of one host with CUDA IPC rings, so that the
// early hand-on (a stage hands a step to the next stage as soon as it has sent it, before its
// own worker has answered) runs on a machine without a GPU.
//
// What is real: the coordinator side whole (GrpcPipeline, HealthMonitor, IpcTopology,
// WorkerLink, the worker protocol over gRPC: handshake, Connect, the step stream, releases)
// and the host half of a hop, the shared-memory handover words (worker/handover.h) that the
// fake workers post and wait on as the real ones do. What is faked: the GPU half. The ring
// "handles" in the handshake are placeholder bytes, Connect opens no CUDA memory, and an IPC
// step's activation is "copied" through a map in this process (FakeRings) instead of a device
// buffer and an interprocess event. Not covered: WorkerCore / WorkerService themselves, the
// CUDA backend's export, import and copies, and processes on a real GPU (the GPU tests and
// scripts/gpu-cluster-bench.sh cover those).
//
// The fake model: the first worker embeds token id t as the 1-float activation 10 t, every
// worker adds 1, and the last "samples" each sequence's last activation as the token id; so
// three stages give 10 t + 3.
#include "coordinator/grpc_pipeline.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/protocol.h"
#include "layerpipe/v1/worker.grpc.pb.h"
#include "worker/handover.h"

namespace lp {
namespace {

using namespace std::chrono_literals;
using layerpipe::v1::StepRequest;
using layerpipe::v1::StepResponse;

constexpr char kFingerprint[] = "fake-model";
constexpr int64_t kMaxSeqs = 4, kMaxContext = 64, kMaxStepTokens = 16;

uint64_t RandomInstance() {
  return std::random_device{}() * 0x100000000ull + std::random_device{}();
}

// The device memory of every fake worker's ring: (instance, slot) -> activation.
class FakeRings {
 public:
  void Write(uint64_t instance, int slot, std::vector<float> data) {
    std::lock_guard<std::mutex> lock(mu_);
    slots_[{instance, slot}] = std::move(data);
  }
  std::vector<float> Read(uint64_t instance, int slot) {
    std::lock_guard<std::mutex> lock(mu_);
    return slots_[{instance, slot}];
  }

 private:
  std::mutex mu_;
  std::map<std::pair<uint64_t, int>, std::vector<float>> slots_;
};

// What a fake worker saw of one step.
struct SeenStep {
  uint64_t step_id = 0;
  bool ipc_in = false;
  bool ipc_out = false;
  size_t hidden_bytes = 0;
  // With ipc_out: whether the next worker had the step before this one answered.
  bool next_had_it_first = false;
};

class FakeWorker : public layerpipe::v1::Worker::Service {
 public:
  FakeWorker(int index, int stages, FakeRings* rings)
      : index_(index), head_(index + 1 == stages), rings_(rings) {
    NewInstance();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeWorker() override { server_->Shutdown(std::chrono::system_clock::now() + 1s); }

  WorkerExpectation expectation() const {
    return {name(),        "127.0.0.1:" + std::to_string(port_),
            device(),      kFingerprint,
            index_,        index_ + 1,
            index_ == 0,   head_,
            kMaxSeqs,      kMaxContext,
            kMaxStepTokens};
  }
  void set_next(FakeWorker* next) { next_ = next; }

  // A restart as the coordinator sees it: a new instance with a new ring and handover words.
  void NewInstance() {
    std::lock_guard<std::mutex> lock(mu_);
    instance_ = RandomInstance();
    if (!head_) {
      auto h = Handover::Create(name(), instance_, kIpcRing);
      ASSERT_TRUE(h.ok()) << h.status();
      handover_out_ = std::move(*h);
    }
  }
  uint64_t instance() const {
    std::lock_guard<std::mutex> lock(mu_);
    return instance_;
  }
  // The next step that reads its input by IPC fails, as after a restart of the previous worker.
  void FailNextIpcInput() { fail_next_ipc_in_ = true; }
  // A step whose first token id is `id` is answered `delay` after it is read.
  void DelayAnswer(int32_t id, std::chrono::milliseconds delay) {
    std::lock_guard<std::mutex> lock(mu_);
    delays_[id] = delay;
  }
  // A step whose first token id is `id` ends its stream with UNAVAILABLE, unanswered.
  void BreakStreamAt(int32_t id) { break_at_ = id; }
  int streams() const { return streams_.load(); }  // step streams opened
  void RefuseConnect(bool refuse) { refuse_connect_ = refuse; }
  int connects() const { return connects_.load(); }
  uint64_t peer_instance() const {
    std::lock_guard<std::mutex> lock(mu_);
    return peer_instance_;
  }
  std::vector<SeenStep> seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  // Waits until a step `step_id` has reached this worker; false on timeout.
  bool WaitReceived(uint64_t step_id, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return received_cv_.wait_for(lock, timeout, [&] { return received_.count(step_id) > 0; });
  }
  // The same for a step whose first token id is `id`.
  bool WaitReceivedFirstId(int32_t id, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return received_cv_.wait_for(lock, timeout, [&] { return received_first_ids_.count(id) > 0; });
  }

  grpc::Status Handshake(grpc::ServerContext*, const layerpipe::v1::HandshakeRequest*,
                         layerpipe::v1::HandshakeResponse* r) override {
    std::lock_guard<std::mutex> lock(mu_);
    r->set_protocol_version(kProtocolVersion);
    r->set_name(name());
    r->set_model_fingerprint(kFingerprint);
    r->set_layer_begin(index_);
    r->set_layer_end(index_ + 1);
    r->set_embed(index_ == 0);
    r->set_head(head_);
    r->set_dtype("bf16");
    r->set_device(device());
    r->set_max_batch(kMaxSeqs);
    r->set_max_context(kMaxContext);
    r->set_max_step_tokens(kMaxStepTokens);
    r->set_hidden_size(1);
    r->set_host_id("fake-host");  // every fake worker on one host: IPC is possible
    if (!head_) {                 // the last stage exports no ring, as a real one
      for (int k = 0; k < kIpcRing; ++k) {
        r->add_ipc_buffers("fake buffer handle");
        r->add_ipc_events("fake event handle");
      }
    }
    r->set_instance_id(instance_);
    return grpc::Status::OK;
  }

  grpc::Status Connect(grpc::ServerContext*, const layerpipe::v1::ConnectRequest* req,
                       layerpipe::v1::ConnectResponse*) override {
    if (refuse_connect_) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "refused by the test");
    }
    if (req->prev_ipc_buffers_size() != kIpcRing || req->prev_ipc_events_size() != kIpcRing) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not a whole ring");
    }
    auto h = Handover::Open(req->prev_name(), req->prev_instance_id(), kIpcRing);
    if (!h.ok()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, std::string(h.status().message()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    handover_in_ = std::move(*h);
    peer_instance_ = req->prev_instance_id();
    ++connects_;
    return grpc::Status::OK;
  }

  grpc::Status Release(grpc::ServerContext*, const layerpipe::v1::ReleaseRequest*,
                       layerpipe::v1::ReleaseResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status Stats(grpc::ServerContext*, const layerpipe::v1::StatsRequest*,
                     layerpipe::v1::StatsResponse*) override {
    return grpc::Status::OK;
  }

  grpc::Status Step(grpc::ServerContext*,
                    grpc::ServerReaderWriter<StepResponse, StepRequest>* stream) override {
    ++streams_;
    StepRequest first, piece;
    while (stream->Read(&first)) {
      std::string bytes = first.hidden_chunk();
      bool complete = first.last_chunk();
      while (!complete && stream->Read(&piece)) {
        bytes += piece.hidden_chunk();
        complete = piece.last_chunk();
      }
      if (!complete) break;
      SeenStep seen{first.step_id(), first.has_ipc_in_slot(), first.has_ipc_out_slot(),
                    bytes.size()};
      const int32_t first_id = first.ids_size() > 0 ? first.ids(0) : -1;
      std::chrono::milliseconds delay{0};
      {
        std::lock_guard<std::mutex> lock(mu_);
        received_.insert(first.step_id());
        received_first_ids_.insert(first_id);
        if (auto it = delays_.find(first_id); it != delays_.end()) delay = it->second;
      }
      received_cv_.notify_all();
      if (first_id == break_at_.load()) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broken by the test");
      }
      std::vector<float> hidden;
      StepResponse response;
      response.set_step_id(first.step_id());
      absl::Status s = Run(first, bytes, &hidden);
      std::this_thread::sleep_for(delay);
      if (first.has_ipc_out_slot()) {
        // The real worker posts once its output is queued on the GPU, success or not.
        const int slot = first.ipc_out_slot();
        if (s.ok()) rings_->Write(instance(), slot, hidden);
        {
          std::lock_guard<std::mutex> lock(mu_);
          handover_out_->Post(slot, first.step_id(), s.ok());
        }
        // Answering only after the next worker has the step proves the early hand-on: without
        // it the next worker gets the step only after this answer, and this wait times out.
        if (s.ok()) seen.next_had_it_first = next_->WaitReceived(first.step_id(), 5s);
        hidden.clear();  // an IPC step sends no bytes back
      }
      if (!s.ok()) response.set_error(std::string(s.message()));
      if (s.ok() && head_) {
        size_t end = 0;
        for (const auto& q : first.seqs()) {
          end += size_t(q.n_tokens());
          if (!q.has_sampling()) continue;
          auto* t = response.add_sampled();
          t->set_slot(q.slot());
          t->set_id(int32_t(hidden[end - 1]));
        }
        hidden.clear();
      }
      response.set_hidden_chunk(hidden.data(), hidden.size() * sizeof(float));
      response.set_last_chunk(true);
      response.set_instance_id(instance());
      {
        std::lock_guard<std::mutex> lock(mu_);
        seen_.push_back(seen);
      }
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }

 private:
  std::string name() const { return "w" + std::to_string(index_); }
  std::string device() const { return "cuda:" + std::to_string(index_); }

  // The fake model on one step: its input from the ids, the bytes, or the previous ring.
  absl::Status Run(const StepRequest& req, const std::string& bytes, std::vector<float>* hidden) {
    if (index_ == 0) {
      for (int32_t id : req.ids()) hidden->push_back(10.0f * float(id));
    } else if (req.has_ipc_in_slot()) {
      uint64_t peer = 0;
      const Handover* in = nullptr;
      {
        std::lock_guard<std::mutex> lock(mu_);
        peer = peer_instance_;
        in = handover_in_.get();
      }
      if (fail_next_ipc_in_.exchange(false) || in == nullptr || req.ipc_in_instance() != peer) {
        return absl::FailedPreconditionError(
            "no CUDA IPC connection to this instance of the previous worker");
      }
      if (absl::Status s = in->Wait(req.ipc_in_slot(), req.step_id(), 5000ms); !s.ok()) return s;
      *hidden = rings_->Read(peer, req.ipc_in_slot());
    } else {
      hidden->resize(bytes.size() / sizeof(float));
      std::memcpy(hidden->data(), bytes.data(), bytes.size());
    }
    if (hidden->size() != size_t(req.ids_size())) {
      return absl::InvalidArgumentError("activation rows do not match the step's tokens");
    }
    for (float& x : *hidden) x += 1.0f;
    return absl::OkStatus();
  }

  const int index_;
  const bool head_;
  FakeRings* rings_;
  FakeWorker* next_ = nullptr;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable std::mutex mu_;
  std::condition_variable received_cv_;
  std::set<uint64_t> received_;
  std::set<int32_t> received_first_ids_;
  std::map<int32_t, std::chrono::milliseconds> delays_;
  std::vector<SeenStep> seen_;
  uint64_t instance_ = 0;
  std::unique_ptr<Handover> handover_out_;
  std::unique_ptr<Handover> handover_in_;
  uint64_t peer_instance_ = 0;
  std::atomic<bool> fail_next_ipc_in_{false};
  std::atomic<bool> refuse_connect_{false};
  std::atomic<int> connects_{0};
  std::atomic<int32_t> break_at_{-2};
  std::atomic<int> streams_{0};
};

// Waits until `done` holds; false on timeout.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Three fake workers and a pipeline over them (monitor period 100 ms).
class FakeCluster {
 public:
  explicit FakeCluster(bool allow_ipc, int stages = 3, bool decode_ahead = true) {
    for (int i = 0; i < stages; ++i) {
      workers_.push_back(std::make_unique<FakeWorker>(i, stages, &rings_));
    }
    std::vector<WorkerExpectation> expect;
    for (int i = 0; i < stages; ++i) {
      if (i + 1 < stages) workers_[size_t(i)]->set_next(workers_[size_t(i) + 1].get());
      expect.push_back(workers_[size_t(i)]->expectation());
    }
    pipeline_ = std::make_unique<GrpcPipeline>(
        std::move(expect),
        GrpcPipeline::Options{
            .monitor_period_ms = 100, .allow_ipc = allow_ipc, .decode_ahead = decode_ahead},
        nullptr);
  }
  ~FakeCluster() { pipeline_.reset(); }  // before the workers it talks to

  GrpcPipeline& pipeline() { return *pipeline_; }
  FakeWorker& worker(int i) { return *workers_[size_t(i)]; }
  bool AllIpc() const {
    for (size_t i = 1; i < workers_.size(); ++i) {
      if (pipeline_->Transport(i) != "cuda-ipc") return false;
    }
    return true;
  }

 private:
  FakeRings rings_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
  std::unique_ptr<GrpcPipeline> pipeline_;
};

// Step `tag`: a prompt of two tokens (tag, tag + 1) in slot 0 and one (tag + 2) in slot 1,
// both sampled.
StepInput MakeStep(uint64_t tag) {
  StepInput s;
  s.seqs.push_back({0, 0, 2, SamplingParams{}});
  s.seqs.push_back({1, 0, 1, SamplingParams{}});
  s.ids = {int32_t(tag), int32_t(tag + 1), int32_t(tag + 2)};
  return s;
}

// The fake model's tokens for MakeStep(tag) through `stages` stages (each adds 1).
void ExpectTokens(const StepResult& r, uint64_t tag, int stages = 3) {
  ASSERT_TRUE(r.status.ok()) << "step " << tag << ": " << r.status;
  ASSERT_EQ(r.sampled.size(), 2u) << "step " << tag;
  EXPECT_EQ(r.sampled[0].slot, 0);
  EXPECT_EQ(r.sampled[0].id, int32_t(10 * (tag + 1) + uint64_t(stages))) << "step " << tag;
  EXPECT_EQ(r.sampled[1].slot, 1);
  EXPECT_EQ(r.sampled[1].id, int32_t(10 * (tag + 2) + uint64_t(stages))) << "step " << tag;
}

// Submits steps tags [first, first + n) keeping depth() in flight, as the scheduler does, and
// returns the results in the order they came.
std::vector<StepResult> RunSteps(GrpcPipeline& p, uint64_t first, int n) {
  std::vector<StepResult> results;
  uint64_t next = first;
  int in_flight = 0;
  while (int(results.size()) < n) {
    while (in_flight < p.depth() && next < first + uint64_t(n)) {
      p.Submit(next, MakeStep(next));
      ++next;
      ++in_flight;
    }
    StepResult r;
    if (!p.Next(20000, &r)) {
      ADD_FAILURE() << "no result within 20 s";
      break;
    }
    --in_flight;
    results.push_back(std::move(r));
  }
  return results;
}

TEST(GrpcPipelineTest, IpcStepsAreHandedOnEarlyAndComeBackInOrder) {
  FakeCluster c(/*allow_ipc=*/true);
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Ready() && c.AllIpc(); }));
  EXPECT_EQ(c.pipeline().Transport(0), "token ids");
  ASSERT_EQ(c.pipeline().depth(), 3);  // three devices

  constexpr int kSteps = 30;
  const auto results = RunSteps(c.pipeline(), 1000, kSteps);
  ASSERT_EQ(results.size(), size_t(kSteps));
  for (int k = 0; k < kSteps; ++k) {
    EXPECT_EQ(results[size_t(k)].tag, 1000u + uint64_t(k));
    ExpectTokens(results[size_t(k)], 1000 + uint64_t(k));
  }
  // Every hop went by the (fake) ring, and every stage handed each step on before its worker
  // answered.
  for (int i = 0; i < 3; ++i) {
    const auto seen = c.worker(i).seen();
    ASSERT_EQ(seen.size(), size_t(kSteps)) << "worker " << i;
    for (const SeenStep& s : seen) {
      EXPECT_EQ(s.ipc_in, i > 0) << "worker " << i << " step " << s.step_id;
      EXPECT_EQ(s.ipc_out, i < 2) << "worker " << i << " step " << s.step_id;
      if (i > 0) EXPECT_EQ(s.hidden_bytes, 0u) << "worker " << i;
      if (i < 2) EXPECT_TRUE(s.next_had_it_first) << "worker " << i << " step " << s.step_id;
    }
  }
}

TEST(GrpcPipelineTest, WithoutIpcActivationsTravelInTheStream) {
  FakeCluster c(/*allow_ipc=*/false);
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Ready(); }));
  EXPECT_EQ(c.pipeline().Transport(1), "grpc");
  EXPECT_EQ(c.pipeline().Transport(2), "grpc");
  const auto results = RunSteps(c.pipeline(), 7, 10);
  ASSERT_EQ(results.size(), 10u);
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(results[size_t(k)].tag, 7u + uint64_t(k));
    ExpectTokens(results[size_t(k)], 7 + uint64_t(k));
  }
  for (int i = 1; i < 3; ++i) {
    for (const SeenStep& s : c.worker(i).seen()) {
      EXPECT_FALSE(s.ipc_in);
      EXPECT_EQ(s.hidden_bytes, 3 * sizeof(float));  // three tokens of one float
    }
  }
  EXPECT_EQ(c.worker(1).connects(), 0);
}

// A step that fails on its IPC input (as after a neighbour's restart) fails alone, in its
// place among the steps in flight; that link goes by gRPC until the monitor connects the rings
// again, and then steps go by IPC again.
TEST(GrpcPipelineTest, AFailedIpcInputFallsBackToGrpcUntilReconnected) {
  FakeCluster c(/*allow_ipc=*/true);
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Ready() && c.AllIpc(); }));
  const int connects = c.worker(1).connects();
  c.worker(1).RefuseConnect(true);  // holds the fallback until the test lets go
  c.worker(1).FailNextIpcInput();

  for (uint64_t tag = 100; tag < 103; ++tag) c.pipeline().Submit(tag, MakeStep(tag));
  std::vector<StepResult> results(3);
  for (auto& r : results) ASSERT_TRUE(c.pipeline().Next(20000, &r));
  EXPECT_EQ(results[0].tag, 100u);
  EXPECT_FALSE(results[0].status.ok());
  EXPECT_NE(results[0].status.message().find("w1"), std::string::npos) << results[0].status;
  for (uint64_t k = 1; k < 3; ++k) {  // submitted before the failure: still by IPC, unharmed
    EXPECT_EQ(results[k].tag, 100 + k);
    ExpectTokens(results[k], 100 + k);
  }
  EXPECT_TRUE(c.pipeline().Ready());  // a failed step is not a lost worker
  EXPECT_EQ(c.pipeline().Transport(1), "grpc");
  // Worker 2 failed step 100 too (worker 1 posted it as failed), on its IPC input: so link
  // 1 -> 2 was dropped as well, though nothing was wrong with it, and the monitor connects it
  // again at its next check (worker 2 does not refuse).
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Transport(2) == "cuda-ipc"; }));

  // Over gRPC into worker 1 while the rings cannot be connected (the monitor tries each period).
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(c.pipeline().Transport(1), "grpc");
  auto fallback = RunSteps(c.pipeline(), 200, 5);
  ASSERT_EQ(fallback.size(), 5u);
  for (uint64_t k = 0; k < 5; ++k) {
    EXPECT_EQ(fallback[k].tag, 200 + k);
    ExpectTokens(fallback[k], 200 + k);
  }
  {
    auto last5 = [&](int i) {
      auto seen = c.worker(i).seen();
      return std::vector<SeenStep>(seen.end() - 5, seen.end());
    };
    const auto w0 = last5(0), w1 = last5(1), w2 = last5(2);
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_FALSE(w0[k].ipc_out);
      EXPECT_FALSE(w1[k].ipc_in);
      EXPECT_EQ(w1[k].hidden_bytes, 3 * sizeof(float));
      EXPECT_TRUE(w1[k].ipc_out);
      EXPECT_TRUE(w1[k].next_had_it_first);
      EXPECT_TRUE(w2[k].ipc_in);
    }
  }

  // The monitor connects the rings again, and steps go by IPC again.
  c.worker(1).RefuseConnect(false);
  ASSERT_TRUE(WaitFor([&] { return c.AllIpc(); }));
  EXPECT_GT(c.worker(1).connects(), connects);
  auto again = RunSteps(c.pipeline(), 300, 5);
  ASSERT_EQ(again.size(), 5u);
  for (uint64_t k = 0; k < 5; ++k) ExpectTokens(again[k], 300 + k);
  const auto w1 = c.worker(1).seen();
  for (size_t k = w1.size() - 5; k < w1.size(); ++k) EXPECT_TRUE(w1[k].ipc_in);
}

// A worker that restarts (a new instance, new ring) while idle: the monitor sees the new
// instance at its next handshake, connects the next worker to the new ring, and steps go by
// IPC from the new instance.
TEST(GrpcPipelineTest, ARestartedProducerIsConnectedAgain) {
  FakeCluster c(/*allow_ipc=*/true);
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Ready() && c.AllIpc(); }));
  ASSERT_EQ(RunSteps(c.pipeline(), 1, 3).size(), 3u);
  c.worker(0).NewInstance();
  const uint64_t instance = c.worker(0).instance();
  ASSERT_TRUE(WaitFor([&] { return c.worker(1).peer_instance() == instance && c.AllIpc(); }));
  auto results = RunSteps(c.pipeline(), 10, 5);
  ASSERT_EQ(results.size(), 5u);
  for (uint64_t k = 0; k < 5; ++k) ExpectTokens(results[k], 10 + k);
  const auto w1 = c.worker(1).seen();
  for (size_t k = w1.size() - 5; k < w1.size(); ++k) EXPECT_TRUE(w1[k].ipc_in);
}

// A stream lost mid-step (its worker still answers handshakes) is opened again by the next step,
// not by the health monitor when the link comes back up: a stream the monitor opened could be
// read by a stage thread still taking the answer to a step sent on the old one.
TEST(GrpcPipelineTest, AfterALostStreamTheNextStepOpensTheNewOne) {
  FakeCluster c(/*allow_ipc=*/false, /*stages=*/1);
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Ready(); }));
  auto before = RunSteps(c.pipeline(), 1, 1);
  ASSERT_EQ(before.size(), 1u);
  ExpectTokens(before[0], 1, /*stages=*/1);
  EXPECT_EQ(c.worker(0).streams(), 1);
  c.worker(0).BreakStreamAt(5);
  auto lost = RunSteps(c.pipeline(), 5, 1);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].status.code(), absl::StatusCode::kUnavailable) << lost[0].status;
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Ready(); }));  // handshakes every 100 ms
  std::this_thread::sleep_for(300ms);                          // and a few more
  EXPECT_EQ(c.worker(0).streams(), 1);
  auto after = RunSteps(c.pipeline(), 7, 1);
  ASSERT_EQ(after.size(), 1u);
  ExpectTokens(after[0], 7, /*stages=*/1);
  EXPECT_EQ(c.worker(0).streams(), 2);
}

// One stage: the pipeline sends a decode step before the answer to the one before it. The step
// behind a slow one gets its time budget from when that one is answered, not from when it was
// sent: here it is answered 2.5 s after it was sent, past the 2 s floor of a budget counted
// from then, and within one counted from its start. Steps 10 and 11 are queued while step 9
// holds the worker, so 11 goes out right behind 10 however the test thread is scheduled.
TEST(GrpcPipelineTest, AStepBehindASlowOneIsTimedFromWhenThatOneIsAnswered) {
  FakeCluster c(/*allow_ipc=*/false, /*stages=*/1);
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Ready(); }));
  ASSERT_TRUE(c.pipeline().decode_ahead());
  auto warm = RunSteps(c.pipeline(), 1, 2);  // measures the worker's time per token
  ASSERT_EQ(warm.size(), 2u);
  // Short, so that it hardly moves the measured time per token (a budget's 10 x that).
  c.worker(0).DelayAnswer(9, 100ms);  // MakeStep(tag)'s first id is tag
  c.worker(0).DelayAnswer(10, 1500ms);
  c.worker(0).DelayAnswer(11, 1000ms);
  c.pipeline().Submit(9, MakeStep(9));
  ASSERT_TRUE(c.worker(0).WaitReceivedFirstId(9, 5s));
  c.pipeline().Submit(10, MakeStep(10));
  c.pipeline().Submit(11, MakeStep(11));
  for (uint64_t tag : {9u, 10u, 11u}) {
    StepResult r;
    ASSERT_TRUE(c.pipeline().Next(20000, &r));
    EXPECT_EQ(r.tag, tag);
    ExpectTokens(r, tag, /*stages=*/1);
  }
  EXPECT_TRUE(c.pipeline().Ready());
}

// decode_ahead off (the cluster file's `decode_ahead: false`): one step at a time, same tokens.
TEST(GrpcPipelineTest, OneStageWithoutDecodeAheadTakesOneStepAtATime) {
  FakeCluster c(/*allow_ipc=*/false, /*stages=*/1, /*decode_ahead=*/false);
  ASSERT_TRUE(WaitFor([&] { return c.pipeline().Ready(); }));
  EXPECT_FALSE(c.pipeline().decode_ahead());
  EXPECT_EQ(c.pipeline().depth(), 1);
  const auto results = RunSteps(c.pipeline(), 1, 4);
  ASSERT_EQ(results.size(), 4u);
  for (uint64_t k = 0; k < 4; ++k) {
    EXPECT_EQ(results[k].tag, 1 + k);
    ExpectTokens(results[k], 1 + k, /*stages=*/1);
  }
}

}  // namespace
}  // namespace lp
