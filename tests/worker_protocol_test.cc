// The coordinator-worker protocol's pure parts, without a network: the handshake check
// against the plan, activations split into chunks and reassembled, and status codes across
// the RPC edge.
#include <gtest/gtest.h>

#include <functional>
#include <numeric>

#include "common/activation_chunks.h"
#include "common/grpc_status.h"
#include "common/protocol.h"
#include "common/sampling_params.h"
#include "coordinator/worker_link.h"

namespace lp {
namespace {

// ---- CheckHandshake

WorkerExpectation Want() {
  WorkerExpectation w;
  w.name = "w1";
  w.address = "127.0.0.1:5001";
  w.device = "cpu:0";
  w.fingerprint = "config=a generation=b tensors=c content=d";
  w.layer_begin = 2;
  w.layer_end = 4;
  w.embed = false;
  w.head = true;
  w.max_batch = 8;
  w.max_context = 512;
  w.max_step_tokens = 256;
  return w;
}

layerpipe::v1::HandshakeResponse Agreeing() {
  const WorkerExpectation w = Want();
  layerpipe::v1::HandshakeResponse h;
  h.set_protocol_version(kProtocolVersion);
  h.set_name(w.name);
  h.set_model_fingerprint(w.fingerprint);
  h.set_layer_begin(w.layer_begin);
  h.set_layer_end(w.layer_end);
  h.set_embed(w.embed);
  h.set_head(w.head);
  h.set_device(w.device);
  h.set_max_batch(w.max_batch);
  h.set_max_context(w.max_context);
  h.set_max_step_tokens(w.max_step_tokens);
  return h;
}

TEST(CheckHandshake, AgreeingWorkerIsAccepted) {
  EXPECT_TRUE(CheckHandshake(Agreeing(), Want()).ok());
}

TEST(CheckHandshake, EachDisagreementIsRefusedAndNamed) {
  using H = layerpipe::v1::HandshakeResponse;
  const std::vector<std::pair<std::function<void(H*)>, std::string>> cases = {
      {[](H* h) { h->set_protocol_version(kProtocolVersion + 1); }, "its protocol version is"},
      {[](H* h) { h->set_name("w2"); }, "its name is w2, the plan says w1"},
      {[](H* h) { h->set_model_fingerprint("config=a generation=b tensors=X content=d"); },
       "they differ in tensor names"},
      {[](H* h) { h->set_layer_end(5); }, "its layer range is [2, 5), the plan says [2, 4)"},
      {[](H* h) { h->set_embed(true); }, "embedding/head ownership"},
      {[](H* h) { h->set_head(false); }, "embedding/head ownership"},
      {[](H* h) { h->set_device("cuda:0"); }, "its device is cuda:0"},
      {[](H* h) { h->set_max_batch(4); }, "limits (batch/context/step tokens) is 4/512/256"},
      {[](H* h) { h->set_max_context(1024); }, "limits"},
      {[](H* h) { h->set_max_step_tokens(1); }, "limits"},
  };
  for (const auto& [change, message] : cases) {
    H h = Agreeing();
    change(&h);
    absl::Status s = CheckHandshake(h, Want());
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << message;
    EXPECT_NE(s.message().find(message), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("'w1' at 127.0.0.1:5001"), std::string::npos) << s.message();
  }
}

// ---- CheckStepAnswer: what a worker answers is checked before the API's responses use it

TEST(CheckStepAnswer, MalformedSampledTokensAreRefused) {
  layerpipe::v1::StepResponse r;
  auto* t = r.add_sampled();
  t->set_slot(7);
  t->set_id(5);
  t->add_top_ids(5);
  t->add_top_logprobs(-0.1f);
  EXPECT_TRUE(CheckStepAnswer(r, Want()).ok());
  WorkerExpectation middle = Want();
  middle.head = false;
  EXPECT_EQ(CheckStepAnswer(r, middle).code(), absl::StatusCode::kInternal);
  using T = layerpipe::v1::SampledToken;
  const std::vector<std::function<void(T*)>> bad = {
      [](T* t) { t->set_slot(-1); },
      [](T* t) { t->set_slot(8); },     // max_batch is 8
      [](T* t) { t->add_top_ids(6); },  // one log-probability short
      [](T* t) { t->mutable_top_logprobs()->Clear(); },
      [](T* t) {
        for (int i = 0; i < kMaxLogprobs; ++i) {
          t->add_top_ids(i);
          t->add_top_logprobs(-1);
        }
      },
  };
  for (const auto& change : bad) {
    layerpipe::v1::StepResponse b = r;
    change(b.mutable_sampled(0));
    const absl::Status s = CheckStepAnswer(b, Want());
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << b.ShortDebugString();
    EXPECT_NE(s.message().find("worker 'w1'"), std::string::npos) << s.message();
  }
}

// ---- Activation chunks

std::vector<std::pair<std::string, bool>> Split(std::string_view bytes, size_t chunk) {
  std::vector<std::pair<std::string, bool>> pieces;
  EXPECT_TRUE(ForEachChunk(bytes, chunk, [&](std::string_view p, bool last) {
    pieces.emplace_back(std::string(p), last);
    return true;
  }));
  return pieces;
}

TEST(ActivationChunks, SplitsIntoPiecesWithTheLastMarked) {
  using P = std::vector<std::pair<std::string, bool>>;
  EXPECT_EQ(Split("", 4), (P{{"", true}}));  // a step without activations still has a message
  EXPECT_EQ(Split("abc", 4), (P{{"abc", true}}));
  EXPECT_EQ(Split("abcdefgh", 4), (P{{"abcd", false}, {"efgh", true}}));
  EXPECT_EQ(Split("abcdefghij", 4), (P{{"abcd", false}, {"efgh", false}, {"ij", true}}));
}

TEST(ActivationChunks, SendingStopsAtTheFirstFailedWrite) {
  int calls = 0;
  EXPECT_FALSE(ForEachChunk("abcdefghij", 4, [&](std::string_view, bool) { return ++calls < 2; }));
  EXPECT_EQ(calls, 2);
}

TEST(ActivationChunks, RoundTripOfAHiddenStateLargerThanOneChunk) {
  // 2.5 chunks of kChunkBytes, as a long prefill sends.
  std::vector<float> hidden(kChunkBytes * 5 / 2 / sizeof(float));
  std::iota(hidden.begin(), hidden.end(), 0.5f);
  const std::string_view bytes(reinterpret_cast<const char*>(hidden.data()),
                               hidden.size() * sizeof(float));
  ChunkAssembler in(bytes.size());
  int pieces = 0;
  ForEachChunk(bytes, kChunkBytes, [&](std::string_view p, bool last) {
    EXPECT_EQ(in.state(), ChunkAssembler::State::kPartial);
    in.Add(p, last);
    ++pieces;
    return true;
  });
  EXPECT_EQ(pieces, 3);
  EXPECT_EQ(in.state(), ChunkAssembler::State::kComplete);
  std::vector<float> out;
  ASSERT_TRUE(in.Floats(&out).ok());
  EXPECT_EQ(out, hidden);
}

TEST(ActivationChunks, MoreThanTheLimitIsRefusedEvenBeforeTheLastPiece) {
  ChunkAssembler in(8);
  EXPECT_EQ(in.Add("abcd", false), ChunkAssembler::State::kPartial);
  EXPECT_EQ(in.Add("efgh", false), ChunkAssembler::State::kPartial);  // exactly the limit
  EXPECT_EQ(in.Add("i", false), ChunkAssembler::State::kTooLarge);
  EXPECT_EQ(in.Add("j", true), ChunkAssembler::State::kTooLarge);  // stays refused
  in.Reset(4);
  EXPECT_EQ(in.Add("abcde", true), ChunkAssembler::State::kTooLarge);  // one piece, too big
}

TEST(ActivationChunks, PartialFloatsAreInvalid) {
  ChunkAssembler in;
  in.Add("abcdef", true);
  std::vector<float> out;
  absl::Status s = in.Floats(&out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "hidden state is not a whole number of float32 values");
}

TEST(ActivationChunks, ResetStartsTheNextMessage) {
  ChunkAssembler in;
  in.Add("abcd", true);
  in.Reset();
  EXPECT_EQ(in.state(), ChunkAssembler::State::kPartial);
  EXPECT_EQ(in.bytes(), "");
  EXPECT_EQ(in.Add("", true), ChunkAssembler::State::kComplete);
  std::vector<float> out = {1.0f};
  ASSERT_TRUE(in.Floats(&out).ok());
  EXPECT_TRUE(out.empty());
}

// ---- Status codes across the RPC edge

TEST(GrpcStatus, EveryCodeSurvivesTheRoundTrip) {
  EXPECT_TRUE(ToGrpc(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpc(grpc::Status::OK, "context").ok());
  for (int c = 1; c <= 16; ++c) {
    const absl::Status s(absl::StatusCode(c), "what went wrong");
    const grpc::Status g = ToGrpc(s);
    EXPECT_EQ(int(g.error_code()), c);
    EXPECT_EQ(g.error_message(), "what went wrong");
    EXPECT_EQ(FromGrpc(g), s);
  }
}

TEST(GrpcStatus, ContextGoesBeforeTheMessage) {
  const absl::Status s =
      FromGrpc(grpc::Status(grpc::StatusCode::NOT_FOUND, "no such thing"), "worker 'w0'");
  EXPECT_EQ(s, absl::NotFoundError("worker 'w0': no such thing"));
}

TEST(GrpcStatus, StepErrorKeepsItsCodeAcrossTheStream) {
  layerpipe::v1::StepResponse r;
  SetStepError(absl::OkStatus(), &r);
  EXPECT_TRUE(StepError(r).ok());
  SetStepError(absl::InvalidArgumentError("step has 3 tokens but 2 ids"), &r);
  EXPECT_EQ(StepError(r, "worker 'w1'"),
            absl::InvalidArgumentError("worker 'w1': step has 3 tokens but 2 ids"));
}

TEST(GrpcStatus, StepErrorWithoutACodeIsInternal) {
  layerpipe::v1::StepResponse r;
  r.set_error("something broke");  // as a worker of protocol version 4 sent it
  EXPECT_EQ(StepError(r), absl::InternalError("something broke"));
  r.set_error_code(99);  // not a code: INTERNAL too
  EXPECT_EQ(StepError(r).code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace lp
