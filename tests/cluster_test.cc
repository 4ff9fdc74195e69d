// The cluster end to end on loopback: worker and coordinator processes, the public gRPC API,
// continuous batching, validation, cancellation, and a worker killed and brought back.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <optional>
#include <sstream>

#include "cluster_client.h"
#include "cluster_harness.h"
#include "layerpipe/v1/layerpipe.grpc.pb.h"
#include "layerpipe/v1/worker.grpc.pb.h"
#include "run_command.h"

namespace lp {
namespace {

using layerpipe::v1::GenerateRequest;
using layerpipe::v1::GenerateResponse;
using lp::testing::ActiveSequences;
using lp::testing::Cluster;
using lp::testing::FixtureDir;
using lp::testing::Generate;
using lp::testing::Ids;
using lp::testing::Outcome;
using lp::testing::Stub;
using lp::testing::WaitAllReleased;

nlohmann::json Expected(const std::string& fixture = "qwen3-tiny") {
  return lp::testing::LoadJson(FixtureDir(fixture) + "/expected.json");
}

struct ClusterCase {
  std::string fixture;
  int workers;
};

void PrintTo(const ClusterCase& c, std::ostream* os) { *os << c.fixture << " x" << c.workers; }

class ClusterSizes : public ::testing::TestWithParam<ClusterCase> {};

TEST_P(ClusterSizes, GreedyEqualsReference) {
  Cluster cluster(FixtureDir(GetParam().fixture), GetParam().workers);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  int compared = 0;
  const nlohmann::json expected = Expected(GetParam().fixture);
  for (const auto& c : expected["cases"]) {
    const auto prompt = c["prompt"].get<std::vector<int32_t>>();
    // The reference's generate() masked prompt token 0 as padding (see model_test.cc).
    if (std::find(prompt.begin(), prompt.end(), 0) != prompt.end()) continue;
    Outcome o = Generate(cluster, Ids(prompt, 20));
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    EXPECT_EQ(o.ids, c["greedy20"].get<std::vector<int32_t>>());
    EXPECT_EQ(o.finish, layerpipe::v1::FINISH_REASON_LENGTH);
    ++compared;
  }
  EXPECT_EQ(compared, int(expected["cases"].size()) - (GetParam().fixture == "qwen3-tiny"));
}

// The Int4 fixtures (GPTQ, AWQ) through three CPU workers too.
INSTANTIATE_TEST_SUITE_P(
    Workers, ClusterSizes,
    ::testing::Values(ClusterCase{"qwen3-tiny", 1}, ClusterCase{"qwen3-tiny", 2},
                      ClusterCase{"qwen3-tiny", 3}, ClusterCase{"qwen2-gptq-small", 3},
                      ClusterCase{"qwen3-awq-small", 3}),
    [](const ::testing::TestParamInfo<ClusterCase>& info) {
      std::string name = info.param.fixture + "_" + std::to_string(info.param.workers) + "workers";
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

// Through three workers, and through one, which takes decode steps ahead
// (coordinator/scheduler_core.h).
class ClusterWorkers : public ::testing::TestWithParam<int> {};

TEST_P(ClusterWorkers, ConcurrentRequestsGetWhatTheyGetAlone) {
  Cluster cluster(FixtureDir("qwen3-tiny"), GetParam());
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 16; ++i) {
    std::vector<int32_t> prompt;
    for (int j = 0; j < 2 + 7 * i; ++j) prompt.push_back((i * 7919 + j * 104729) % 151000);
    GenerateRequest r = Ids(prompt, 3 + i % 6);
    if (i % 2) {
      r.set_temperature(0.8f);
      r.set_top_k(i % 4 ? 40 : 0);
      r.set_top_p(0.9f);
      r.set_seed(77 + i);
      r.set_repetition_penalty(i % 3 ? 1.0f : 1.2f);
    }
    r.set_logprobs(i % 3);
    reqs.push_back(r);
  }
  std::vector<Outcome> alone;
  for (const auto& r : reqs) alone.push_back(Generate(cluster, r));
  std::vector<std::future<Outcome>> together;
  for (const auto& r : reqs)
    together.push_back(std::async(std::launch::async, [&, r] { return Generate(cluster, r); }));
  for (size_t i = 0; i < reqs.size(); ++i) {
    Outcome o = together[i].get();
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    EXPECT_EQ(o.ids, alone[i].ids) << "request " << i;
    EXPECT_EQ(o.logprob_steps, reqs[i].logprobs() > 0 ? int(o.ids.size()) : 0);
  }
  // Seeded sampling is reproducible.
  EXPECT_EQ(Generate(cluster, reqs[1]).ids, alone[1].ids);
}

INSTANTIATE_TEST_SUITE_P(Workers, ClusterWorkers, ::testing::Values(3, 1));

TEST(ClusterApi, BadRequestsAreInvalidArgumentAndHarmNoOne) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  struct Bad {
    GenerateRequest req;
    std::string message;
  };
  std::vector<Bad> bad;
  bad.push_back({GenerateRequest(), "prompt is empty"});
  bad.push_back({Ids({}, 5), "prompt is empty"});
  bad.push_back({Ids({1, 2}, 0), "max_tokens"});
  bad.push_back({Ids({1, 2}, -3), "max_tokens"});
  bad.push_back({Ids({1, 2}, 1000), "max_tokens"});
  auto t = Ids({1, 2}, 5);
  t.set_temperature(-1);
  bad.push_back({t, "temperature"});
  auto p = Ids({1, 2}, 5);
  p.set_top_p(1.5f);
  bad.push_back({p, "top_p"});
  auto z = Ids({1, 2}, 5);
  z.set_top_p(0.0f);
  bad.push_back({z, "top_p"});
  bad.push_back({Ids({1, 999999}, 5), "outside the vocabulary"});
  bad.push_back({Ids(std::vector<int32_t>(300, 5), 5), "context limit"});
  for (const auto& b : bad) {
    Outcome o = Generate(cluster, b.req);
    EXPECT_EQ(o.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.message;
    EXPECT_NE(o.status.error_message().find(b.message), std::string::npos)
        << o.status.error_message();
  }
  Outcome good = Generate(cluster, Ids({1, 2, 3}, 4));
  EXPECT_TRUE(good.status.ok());
  EXPECT_EQ(good.ids.size(), 4u);
}

TEST(ClusterApi, TextChatTokenizeAndModelInfo) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  auto stub = Stub(cluster);
  grpc::ClientContext ctx;
  layerpipe::v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.architecture(), "Qwen3ForCausalLM");
  EXPECT_TRUE(info.has_tokenizer());
  EXPECT_EQ(info.max_context(), 256);

  const auto tok = lp::testing::LoadJson(FixtureDir("tokenizer_cases.json"));
  grpc::ClientContext ctx2;
  layerpipe::v1::TokenizeRequest treq;
  treq.mutable_chat()->add_messages()->set_role("system");
  treq.mutable_chat()->mutable_messages(0)->set_content("You are helpful.");
  treq.mutable_chat()->add_messages()->set_role("user");
  treq.mutable_chat()->mutable_messages(1)->set_content("What is 2+2?");
  treq.mutable_chat()->set_enable_thinking(true);
  layerpipe::v1::TokenizeResponse tresp;
  ASSERT_TRUE(stub->Tokenize(&ctx2, treq, &tresp).ok());
  EXPECT_EQ(tresp.rendered(), tok["chat_example"]["rendered"].get<std::string>());
  EXPECT_EQ(std::vector<int32_t>(tresp.ids().begin(), tresp.ids().end()),
            tok["chat_example"]["ids"].get<std::vector<int32_t>>());

  GenerateRequest text;
  text.set_text("Hello, world!");
  text.set_max_tokens(6);
  text.set_ignore_eos(true);
  Outcome o = Generate(cluster, text);
  ASSERT_TRUE(o.status.ok()) << o.status.error_message();
  EXPECT_EQ(o.ids.size(), 6u);
  EXPECT_FALSE(o.text.empty());
}

TEST(ClusterApi, StopStringsEndTheText) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  Outcome full = Generate(cluster, Ids({9707, 11, 1879}, 12));
  ASSERT_TRUE(full.status.ok()) << full.status.error_message();
  ASSERT_GE(full.text.size(), 4u);
  GenerateRequest r = Ids({9707, 11, 1879}, 12);
  const std::string stop = full.text.substr(full.text.size() / 2, 2);
  r.add_stop(stop);
  Outcome cut = Generate(cluster, r);
  ASSERT_TRUE(cut.status.ok()) << cut.status.error_message();
  EXPECT_EQ(cut.finish, layerpipe::v1::FINISH_REASON_STOP);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
}

TEST(ClusterApi, SigtermDrainsRunningRequestsRefusesNewOnesAndExitsZero) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  std::vector<std::future<Outcome>> running;
  for (int i = 0; i < 6; ++i) {
    running.push_back(std::async(std::launch::async, [&, i] {
      return Generate(cluster, Ids({1 + i, 2, 3}, 200));
    }));
  }
  // Every request holds a slot (and has produced tokens) before the signal.
  for (int i = 0; i < 200; ++i) {
    const auto active = ActiveSequences(cluster);
    if (!active.empty() && active[0] == 6) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(ActiveSequences(cluster), (std::vector<int64_t>{6, 6}));
  cluster.SignalCoordinator(SIGTERM);
  ASSERT_TRUE(lp::testing::WaitHealthAt(cluster.endpoint(), Health::kNotServing, 5000));
  const Outcome refused = Generate(cluster, Ids({4, 5}, 3));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.status.error_message();
  for (auto& f : running) {
    const Outcome o = f.get();
    EXPECT_TRUE(o.status.ok()) << o.status.error_message();
    EXPECT_EQ(o.ids.size(), 200u);
  }
  EXPECT_EQ(cluster.WaitCoordinatorExit(10000), 0) << cluster.log("coordinator");
}

TEST(ClusterApi, CancellationFreesTheKvCacheOnEveryWorker) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 3);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  auto stub = Stub(cluster);
  grpc::ClientContext ctx;
  auto reader = stub->Generate(&ctx, Ids({1, 2, 3}, 200));
  GenerateResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(ActiveSequences(cluster), (std::vector<int64_t>{1, 1, 1}));
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  reader->Finish();
  EXPECT_EQ(WaitAllReleased(cluster, 3), (std::vector<int64_t>{0, 0, 0}));
}

TEST(ClusterApi, DeadlineExceededReleasesTheSequence) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  auto stub = Stub(cluster);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  auto reader = stub->Generate(&ctx, Ids({1, 2, 3}, 250));
  GenerateResponse resp;
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(WaitAllReleased(cluster, 2), (std::vector<int64_t>{0, 0}));
}

// Breaks worker 1 while a long generation runs through it: the request fails with UNAVAILABLE
// within `within`, new ones are refused while the coordinator is NOT_SERVING, and once
// `restore` has run it serves again without being restarted.
void ExpectFailureThenRecovery(Cluster& cluster, const std::function<void()>& fail,
                               std::chrono::seconds within, const std::function<void()>& restore) {
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  auto stub = Stub(cluster);
  grpc::ClientContext ctx;
  auto reader = stub->Generate(&ctx, Ids({1, 2, 3}, 250));
  GenerateResponse resp;
  ASSERT_TRUE(reader->Read(&resp)) << reader->Finish().error_message() << "\n"
                                   << cluster.log("coordinator") << cluster.log("w1");
  const auto failed_at = std::chrono::steady_clock::now();
  fail();
  while (reader->Read(&resp)) {
  }
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - failed_at, within);
  EXPECT_TRUE(cluster.WaitHealth(Health::kNotServing, 5000));
  Outcome refused = Generate(cluster, Ids({1, 2}, 2));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);

  restore();
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 30000)) << cluster.log("coordinator");
  Outcome again = Generate(cluster, Ids({1, 2, 3}, 5));
  EXPECT_TRUE(again.status.ok()) << again.status.error_message() << "\n"
                                 << cluster.log("coordinator") << cluster.log("w1");
  EXPECT_EQ(again.ids.size(), 5u);
}

// Without resuming (recovery.resume_timeout 0): the behaviour before resuming, and what a
// paused request gets after the timeout.
lp::testing::ClusterOptions NoResume() {
  lp::testing::ClusterOptions o;
  o.extra_yaml = "recovery: {resume_timeout: 0}\n";
  return o;
}

TEST(ClusterApi, AKilledWorkerFailsItsRequestsAndTheClusterRecovers) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, NoResume());
  ExpectFailureThenRecovery(
      cluster, [&] { cluster.KillWorker(1); }, std::chrono::seconds(5),
      [&] { cluster.StartWorker(1); });
}

TEST(ClusterApi, AKilledOnlyWorkerFailsItsRequestsAndTheClusterRecovers) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 1, NoResume());
  ExpectFailureThenRecovery(
      cluster, [&] { cluster.KillWorker(0); }, std::chrono::seconds(5),
      [&] { cluster.StartWorker(0); });
}

TEST(ClusterApi, AHungWorkerFailsItsRequestsAndServesAgainWhenItWakes) {
  // A stopped process keeps its connections open but answers nothing: its step misses the
  // deadline its measured step times give (2 s floor), and the requests it held fail instead
  // of hanging (before: 6-10 s, three missed handshakes).
  Cluster cluster(FixtureDir("qwen3-tiny"), 2, NoResume());
  ExpectFailureThenRecovery(
      cluster, [&] { cluster.SignalWorker(1, SIGSTOP); }, std::chrono::seconds(5),
      [&] { cluster.SignalWorker(1, SIGCONT); });
  EXPECT_NE(cluster.log("coordinator").find("did not answer a step in time"), std::string::npos)
      << cluster.log("coordinator");
}

TEST(ClusterApi, AWorkerThatDiesWhileIdleIsSeenAtOnce) {
  // Its connection closes: the coordinator handshakes at once and stops serving, so the next
  // request is refused rather than accepted and failed (with resuming it would wait).
  Cluster cluster(FixtureDir("qwen3-tiny"), 2, NoResume());
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  ASSERT_TRUE(Generate(cluster, Ids({1, 2, 3}, 3)).status.ok());  // the streams are open
  const auto killed_at = std::chrono::steady_clock::now();
  cluster.KillWorker(1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kNotServing, 10000));
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, std::chrono::milliseconds(800));
  EXPECT_EQ(Generate(cluster, Ids({1, 2}, 2)).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(ClusterApi, AWorkerRestartedWhileIdleServesTheFirstRequest) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  ASSERT_TRUE(Generate(cluster, Ids({1, 2, 3}, 3)).status.ok());  // the streams are open
  cluster.KillWorker(1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kNotServing, 10000));
  cluster.StartWorker(1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 30000)) << cluster.log("coordinator");
  Outcome first = Generate(cluster, Ids({1, 2, 3}, 3));
  EXPECT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.ids.size(), 3u);
}

TEST(WorkerApi, EveryStepAnswerNamesTheWorkerInstance) {
  // The coordinator tells a worker which instance of its neighbour wrote a CUDA IPC ring slot
  // from these answers; a non-last worker answers with hidden-state chunks, and each says who.
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  auto worker = layerpipe::v1::Worker::NewStub(
      grpc::CreateChannel(cluster.worker_endpoint(0), grpc::InsecureChannelCredentials()));
  layerpipe::v1::HandshakeResponse hello;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(worker->Handshake(&ctx, layerpipe::v1::HandshakeRequest(), &hello).ok());
  }
  ASSERT_NE(hello.instance_id(), 0u);
  grpc::ClientContext ctx;
  auto stream = worker->Step(&ctx);
  // A step of three tokens in slot 3, then one that only frees the slot again.
  layerpipe::v1::StepRequest run, release;
  run.set_step_id(1);
  auto* seq = run.add_seqs();
  seq->set_slot(3);
  seq->set_n_tokens(3);
  for (int id : {1, 2, 3}) run.add_ids(id);
  run.set_last_chunk(true);
  release.set_step_id(2);
  release.add_release_slots(3);
  release.set_last_chunk(true);
  for (const auto& step : {run, release}) {
    ASSERT_TRUE(stream->Write(step));
    layerpipe::v1::StepResponse answer;
    do {
      ASSERT_TRUE(stream->Read(&answer));
      EXPECT_EQ(answer.error(), "");
      EXPECT_EQ(answer.step_id(), step.step_id());
      EXPECT_EQ(answer.instance_id(), hello.instance_id());
    } while (!answer.last_chunk());
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(WorkerApi, AFailedStepCarriesItsCodeAndTheStreamGoesOn) {
  // A step the worker refuses answers with the error's own code (not a bare string the
  // coordinator could only call INTERNAL), naming the requests it carried; the stream stays
  // usable.
  Cluster cluster(FixtureDir("qwen3-tiny"), 1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  auto worker = layerpipe::v1::Worker::NewStub(
      grpc::CreateChannel(cluster.worker_endpoint(0), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = worker->Step(&ctx);
  layerpipe::v1::StepRequest bad, release;
  bad.set_step_id(1);
  auto* seq = bad.add_seqs();
  seq->set_slot(2);
  seq->set_n_tokens(3);
  seq->set_request_id("req-7");
  for (int id : {1, 2}) bad.add_ids(id);  // three tokens, two ids
  bad.set_last_chunk(true);
  release.set_step_id(2);
  release.add_release_slots(2);
  release.set_last_chunk(true);
  layerpipe::v1::StepResponse answer;
  ASSERT_TRUE(stream->Write(bad));
  ASSERT_TRUE(stream->Read(&answer));
  EXPECT_TRUE(answer.last_chunk());
  // The error names the request it is about, in the answer and in the worker's log.
  EXPECT_EQ(answer.error(), "step has 3 tokens but 2 ids (requests req-7)");
  EXPECT_EQ(answer.error_code(), int(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(cluster.log("w0").find("step 1 failed: step has 3 tokens but 2 ids (requests req-7)"),
            std::string::npos)
      << cluster.log("w0");
  ASSERT_TRUE(stream->Write(release));
  ASSERT_TRUE(stream->Read(&answer));
  EXPECT_EQ(answer.step_id(), 2u);
  EXPECT_EQ(answer.error(), "");
  EXPECT_EQ(answer.error_code(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(ClusterApi, SixteenIdenticalSeededRequestsAtOnceGetWhatOneGetsAlone) {
  // Every sampler option; the copies share steps, so any dependence of a row's logits on the
  // batch (or of the draw on the order of near-equal candidates) shows.
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  std::vector<GenerateRequest> kinds;
  const std::vector<int32_t> prompt = {785, 3974, 13876, 38835, 34208, 916};
  for (int kind = 0; kind < 4; ++kind) {
    GenerateRequest r = Ids(prompt, 12);
    r.set_seed(1234 + kind);
    r.set_temperature(kind == 3 ? 0.0f : 1.0f);
    if (kind == 1) {
      r.set_min_p(0.05f);
      r.set_repetition_penalty(1.3f);
    }
    if (kind == 2) {
      r.set_top_k(50);
      r.set_top_p(0.9f);
      r.set_logprobs(3);
    }
    kinds.push_back(r);
  }
  for (size_t kind = 0; kind < kinds.size(); ++kind) {
    const Outcome alone = Generate(cluster, kinds[kind]);
    ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();
    std::vector<std::future<Outcome>> together;
    for (int i = 0; i < 16; ++i) {
      together.push_back(
          std::async(std::launch::async, [&] { return Generate(cluster, kinds[kind]); }));
    }
    for (int i = 0; i < 16; ++i) {
      const Outcome o = together[size_t(i)].get();
      ASSERT_TRUE(o.status.ok()) << o.status.error_message();
      EXPECT_EQ(o.ids, alone.ids) << "kind " << kind << ", copy " << i;
    }
  }
}

TEST(ClusterApi, ASecondProcessOnATakenPortExitsWithAClearError) {
  // gRPC's default SO_REUSEPORT let a second worker or coordinator start on a taken port and
  // steal part of its traffic.
  Cluster cluster(FixtureDir("qwen3-tiny"), 1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000));
  const std::string log_dir = cluster.cluster_file() + ".";
  lp::testing::Process worker(
      {Cluster::Bin("layerpipe-worker"), cluster.cluster_file(), "--name", "w0"},
      log_dir + "worker2.log");
  lp::testing::Process coordinator({Cluster::Bin("layerpipe-coordinator"), cluster.cluster_file()},
                                   log_dir + "coordinator2.log");
  for (int i = 0; i < 200 && (worker.running() || coordinator.running()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(worker.running()) << "a second worker on a taken port keeps running";
  EXPECT_FALSE(coordinator.running()) << "a second coordinator on a taken port keeps running";
  for (const char* name : {"worker2.log", "coordinator2.log"}) {
    const std::string log = lp::testing::ReadFile(log_dir + name);
    EXPECT_NE(log.find("cannot listen on 127.0.0.1:"), std::string::npos) << name << ": " << log;
  }
  EXPECT_EQ(CheckHealth(cluster.endpoint(), 1000), Health::kServing);
}

TEST(ClusterApi, ReflectionV1ResolvesEveryServedService) {
  // With a client nobody here wrote (Debian's python3-grpcio, requests encoded by hand).
  Cluster cluster(FixtureDir("qwen3-tiny"), 1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000));
  const std::string client =
      "/usr/bin/python3 " + std::string(LP_FIXTURES) + "/../reflection_client.py ";
  auto r = lp::testing::RunCommand(client + cluster.endpoint() +
                                   " layerpipe.v1.Inference grpc.health.v1.Health");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* part :
       {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "layerpipe.v1.Inference",
        "layerpipe.v1.Inference: layerpipe/v1/layerpipe.proto",
        "grpc.health.v1.Health: grpc/health/v1/health.proto"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  }
  r = lp::testing::RunCommand(client + cluster.worker_endpoint(0) + " layerpipe.v1.Worker");
  EXPECT_NE(r.out.find("layerpipe.v1.Worker: layerpipe/v1/worker.proto"), std::string::npos)
      << r.out;
}

TEST(ClusterApi, EnableThinkingUnsetIsQwensDefaultOn) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000));
  auto render = [&](std::optional<bool> thinking) {
    auto stub = Stub(cluster);
    grpc::ClientContext ctx;
    layerpipe::v1::TokenizeRequest req;
    req.mutable_chat()->add_messages()->set_role("user");
    req.mutable_chat()->mutable_messages(0)->set_content("Hi");
    if (thinking) req.mutable_chat()->set_enable_thinking(*thinking);
    layerpipe::v1::TokenizeResponse resp;
    EXPECT_TRUE(stub->Tokenize(&ctx, req, &resp).ok());
    return resp.rendered();
  };
  EXPECT_EQ(render(std::nullopt), render(true));
  EXPECT_NE(render(std::nullopt), render(false));
  EXPECT_NE(render(false).find("<think>"), std::string::npos);
}

TEST(ClusterApi, HealthIsServedPerService) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000));
  EXPECT_EQ(CheckHealth(cluster.endpoint(), 2000, "layerpipe.v1.Inference"), Health::kServing);
  EXPECT_EQ(CheckHealth(cluster.worker_endpoint(0), 2000, "layerpipe.v1.Worker"), Health::kServing);
  EXPECT_EQ(CheckHealth(cluster.endpoint(), 2000, "no.such.Service"), Health::kUnreachable);
  cluster.KillWorker(0);
  for (int i = 0; i < 100 && CheckHealth(cluster.endpoint(), 500, "layerpipe.v1.Inference") ==
                                 Health::kServing;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(CheckHealth(cluster.endpoint(), 2000, "layerpipe.v1.Inference"), Health::kNotServing);
}

TEST(ClusterApi, StatusShowsNoStaleLoadAfterACoordinatorRestart) {
  // A coordinator killed mid-generation leaves its sequences in the workers' KV caches; the
  // next one frees them before it serves, so status shows the load there is.
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000));
  auto busy = std::async(std::launch::async, [&] {
    return Generate(cluster, Ids({1, 2, 3}, 200));
  });
  auto load = [&] {
    auto stub = Stub(cluster);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    layerpipe::v1::ListWorkersResponse resp;
    EXPECT_TRUE(stub->ListWorkers(&ctx, {}, &resp).ok());
    int64_t active = 0;
    for (const auto& w : resp.workers()) active += w.active_sequences() + w.cached_tokens();
    return active;
  };
  for (int i = 0; i < 100 && load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GT(load(), 0) << "the request is running";
  cluster.KillCoordinator();
  busy.get();
  cluster.StartCoordinator();
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  EXPECT_EQ(load(), 0) << "KV slots of the dead coordinator's request are still held";
}

TEST(ClusterApi, CoordinatorRefusesAWorkerThatDisagreesWithThePlan) {
  // A worker started from another cluster file (other limits) answers the handshake with
  // limits the coordinator's plan does not have.
  Cluster cluster(FixtureDir("qwen3-tiny"), 1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000));
  cluster.KillWorker(0);
  std::ifstream in(cluster.cluster_file());
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const std::string other = cluster.cluster_file() + ".other.yaml";
  std::ofstream(other) << text.substr(0, text.find("limits:"))
                       << "limits: {max_batch: 4, max_context: 256, max_step_tokens: 128}\n";
  lp::testing::Process impostor({Cluster::Bin("layerpipe-worker"), other, "--name", "w0"},
                                cluster.cluster_file() + ".impostor.log");
  for (int i = 0;
       i < 300 && cluster.log("coordinator").find("disagrees with the plan") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the impostor loads
  }
  EXPECT_EQ(CheckHealth(cluster.endpoint(), 1000), Health::kNotServing);
  EXPECT_NE(cluster.log("coordinator").find("disagrees with the plan"), std::string::npos)
      << cluster.log("coordinator");
}

TEST(ClusterApi, CoordinatorRefusesAWorkerWithOtherWeights) {
  // Same config.json, same tensor names and shapes, one weight byte changed: the worker must
  // not join and serve other weights silently.
  Cluster cluster(FixtureDir("qwen3-tiny"), 1);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000));
  cluster.KillWorker(0);
  const std::string copy = cluster.cluster_file() + ".model";
  std::filesystem::create_directories(copy);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) {
    std::filesystem::copy_file(FixtureDir("qwen3-tiny") + "/" + f, copy + "/" + f);
  }
  std::filesystem::permissions(copy + "/model.safetensors", std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  {
    std::fstream f(copy + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    uint64_t header = 0;
    f.read(reinterpret_cast<char*>(&header), 8);
    f.seekg(std::streamoff(8 + header + 100));
    char c = 0;
    f.read(&c, 1);
    f.seekp(std::streamoff(8 + header + 100));
    c = char(c ^ 0x40);
    f.write(&c, 1);
  }
  const std::string text = lp::testing::ReadFile(cluster.cluster_file());
  const std::string other = cluster.cluster_file() + ".other.yaml";
  std::ofstream(other) << "model:\n  path: " << copy << text.substr(text.find("\ndevice_map"));
  lp::testing::Process impostor({Cluster::Bin("layerpipe-worker"), other, "--name", "w0"},
                                cluster.cluster_file() + ".impostor.log");
  const std::string refusal =
      "loads another checkpoint than the coordinator: they differ in tensor contents";
  for (int i = 0; i < 300 && cluster.log("coordinator").find(refusal) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the impostor loads
  }
  EXPECT_EQ(CheckHealth(cluster.endpoint(), 1000), Health::kNotServing);
  EXPECT_NE(cluster.log("coordinator").find(refusal), std::string::npos)
      << cluster.log("coordinator");
}

}  // namespace
}  // namespace lp

namespace lp {
namespace {

std::string RunCommand(const std::string& cmd, int* exit_code) {
  auto r = lp::testing::RunCommand(cmd);
  *exit_code = r.exit_code;
  return r.out;
}

TEST(ClusterCli, GenerateJsonAndFailures) {
  Cluster cluster(FixtureDir("qwen3-tiny"), 2);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  const std::string bin = LP_LAYERPIPE_BIN;
  int code = 0;
  const auto expected = lp::testing::LoadJson(FixtureDir("qwen3-tiny") + "/expected.json");
  const auto& c = expected["cases"][1];
  std::string ids;
  for (const auto& id : c["prompt"])
    ids += (ids.empty() ? "" : ",") + std::to_string(id.get<int>());
  std::string out =
      RunCommand(bin + " generate --endpoint " + cluster.endpoint() + " --prompt-ids " + ids +
                     " --max-tokens 20 --ignore-eos --temperature 0 --logprobs 3 --json",
                 &code);
  ASSERT_EQ(code, 0) << out;
  std::istringstream lines(out);
  std::string line, last;
  int events = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    last = line;
    ++events;
  }
  auto done = nlohmann::json::parse(last);
  EXPECT_EQ(done["token_ids"], c["greedy20"]);
  EXPECT_EQ(done["finish_reason"], "length");
  ASSERT_EQ(done["logprobs"].size(), 20u);
  EXPECT_EQ(done["logprobs"][0]["top"].size(), 3u);
  EXPECT_EQ(done["logprobs"][0]["top"][0]["id"], c["greedy20"][0]);
  EXPECT_GT(events, 1);

  out = RunCommand(bin + " generate --endpoint " + cluster.endpoint() + " --prompt-ids 1 --top-p 2",
                   &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("INVALID_ARGUMENT"), std::string::npos) << out;
  EXPECT_NE(out.find("top_p"), std::string::npos) << out;
  out = RunCommand(bin + " generate --endpoint 127.0.0.1:1 --prompt-ids 1 --timeout 2", &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("UNAVAILABLE"), std::string::npos) << out;
}

TEST(ClusterCli, ServeStartsEverythingAndStopsCleanly) {
  // A cluster file with fresh ports, served by `layerpipe serve`.
  const std::string dir = ::testing::TempDir() + "/lp_serve_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const int port = lp::testing::FreePort();
  std::ofstream(dir + "/c.yaml")
      << "model: {path: " << FixtureDir("qwen3-tiny") << "}\n"
      << "coordinator: {listen: \"127.0.0.1:" << port << "\"}\n"
      << "workers:\n"
      << "  - {name: a, device: \"cpu:0\", address: \"127.0.0.1:" << lp::testing::FreePort()
      << "\"}\n"
      << "  - {name: b, device: \"cpu:1\", address: \"127.0.0.1:" << lp::testing::FreePort()
      << "\"}\n"
      << "limits: {max_batch: 4, max_context: 128, max_step_tokens: 64}\n";
  lp::testing::Process serve({LP_LAYERPIPE_BIN, "serve", dir + "/c.yaml"}, dir + "/serve.log");
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  bool serving = false;
  for (int i = 0; i < 300 && !serving; ++i) {
    serving = CheckHealth(endpoint, 200) == Health::kServing;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(serving);
  int code = 0;
  std::string out = RunCommand(std::string(LP_LAYERPIPE_BIN) + " generate --endpoint " + endpoint +
                                   " --prompt \"Hello\" --max-tokens 4 --ignore-eos --json",
                               &code);
  EXPECT_EQ(code, 0) << out;
  serve.Kill(SIGINT);  // waits for `serve`, which stops its children first
  EXPECT_EQ(CheckHealth(endpoint, 500), Health::kUnreachable);
  std::ifstream in(dir + "/serve.log");
  const std::string log{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_NE(log.find("serving on " + endpoint), std::string::npos) << log;
  EXPECT_NE(log.find("serve: stopping"), std::string::npos) << log;
}

// A cluster file with fresh ports for `layerpipe serve`: two CPU workers, a and b.
struct ServeFiles {
  std::string dir, file, endpoint;
  int worker_a_port = 0;
};

ServeFiles WriteServeCluster(const std::string& name) {
  ServeFiles f;
  f.dir = ::testing::TempDir() + "/lp_" + name + "_" + std::to_string(getpid());
  std::filesystem::create_directories(f.dir);
  f.file = f.dir + "/c.yaml";
  const int port = lp::testing::FreePort();
  f.endpoint = "127.0.0.1:" + std::to_string(port);
  f.worker_a_port = lp::testing::FreePort();
  std::ofstream(f.file) << "model: {path: " << FixtureDir("qwen3-tiny") << "}\n"
                        << "coordinator: {listen: \"" << f.endpoint << "\"}\n"
                        << "workers:\n"
                        << "  - {name: a, device: \"cpu:0\", address: \"127.0.0.1:"
                        << f.worker_a_port << "\"}\n"
                        << "  - {name: b, device: \"cpu:1\", address: \"127.0.0.1:"
                        << lp::testing::FreePort() << "\"}\n"
                        << "limits: {max_batch: 4, max_context: 128, max_step_tokens: 64}\n";
  return f;
}

// The pid of the process whose command line holds both strings, or -1.
pid_t FindProcess(const std::string& a, const std::string& b) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string cmdline = lp::testing::ReadFile((e.path() / "cmdline").string());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(a) != std::string::npos && cmdline.find(b) != std::string::npos) {
      return pid_t(std::atoi(e.path().filename().c_str()));
    }
  }
  return -1;
}

TEST(ClusterCli, ServeFailsFastNamingAWorkerThatCannotStart) {
  // Worker a's port is taken: it exits at once, and serve with it (not after --ready-timeout).
  const ServeFiles f = WriteServeCluster("serve_fail");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(uint16_t(f.worker_a_port));
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  listen(fd, 1);
  const auto t0 = std::chrono::steady_clock::now();
  lp::testing::Process serve({LP_LAYERPIPE_BIN, "serve", f.file}, f.dir + "/serve.log");
  EXPECT_EQ(serve.WaitExit(60000), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  const std::string log = lp::testing::ReadFile(f.dir + "/serve.log");
  EXPECT_NE(log.find("worker a exited while the cluster started"), std::string::npos) << log;
  EXPECT_NE(log.find("its last lines:"), std::string::npos) << log;
  EXPECT_NE(log.find("cannot listen on 127.0.0.1:" + std::to_string(f.worker_a_port)),
            std::string::npos)
      << log;
  EXPECT_EQ(FindProcess(f.file, "layerpipe-coordinator"), -1) << "children stopped";
  close(fd);
}

TEST(ClusterCli, ServeRestartsWhatDiesAndGivesUpWithAnError) {
  const ServeFiles f = WriteServeCluster("serve_restart");
  lp::testing::Process serve({LP_LAYERPIPE_BIN, "serve", f.file, "--max-restarts", "1"},
                             f.dir + "/serve.log");
  ASSERT_TRUE(lp::testing::WaitHealthAt(f.endpoint, Health::kServing, 60000))
      << lp::testing::ReadFile(f.dir + "/serve.log");
  // Until serve has seen it too, a death is a failure to start (it gives up at once).
  for (int i = 0; i < 300 && lp::testing::ReadFile(f.dir + "/serve.log").find("serving on") ==
                                 std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // A worker killed: restarted, and the cluster serves again.
  const pid_t worker = FindProcess(f.file, "--name a");
  ASSERT_GT(worker, 0);
  kill(worker, SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(lp::testing::WaitHealthAt(f.endpoint, Health::kServing, 60000))
      << lp::testing::ReadFile(f.dir + "/serve.log");
  EXPECT_NE(FindProcess(f.file, "--name a"), worker);
  // The coordinator killed: restarted too.
  const pid_t coordinator = FindProcess(f.file, "layerpipe-coordinator");
  ASSERT_GT(coordinator, 0);
  kill(coordinator, SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(lp::testing::WaitHealthAt(f.endpoint, Health::kServing, 60000))
      << lp::testing::ReadFile(f.dir + "/serve.log");
  std::string log = lp::testing::ReadFile(f.dir + "/serve.log");
  EXPECT_NE(log.find("serve: worker a died (signal 9); starting it again in 1 s"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("serve: coordinator died (signal 9)"), std::string::npos) << log;
  EXPECT_NE(log.find("[worker b] worker b: ready"), std::string::npos) << "output named" << log;
  // Worker a dies twice within a minute: with --max-restarts 1, serve gives up, exit 1.
  for (int i = 0; i < 2; ++i) {
    pid_t pid = -1;
    for (int t = 0; t < 100 && pid < 0; ++t) {
      pid = FindProcess(f.file, "--name a");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (pid > 0) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_EQ(serve.WaitExit(30000), 1);
  log = lp::testing::ReadFile(f.dir + "/serve.log");
  EXPECT_NE(log.find("worker a died 2 times in a row"), std::string::npos) << log;
  EXPECT_EQ(FindProcess(f.file, "layerpipe-coordinator"), -1) << "children stopped";
}

TEST(ClusterApi, LongPrefillActivationsTravelInChunks) {
  // The demo shape (hidden 256): a 1500-token prompt's hidden state is 1.5 MB, more than one
  // 1 MiB chunk, so it crosses the stage boundary in pieces.
  const std::string dir = ::testing::TempDir() + "/lp_chunk_model_" + std::to_string(getpid());
  int code = 0;
  std::string out = RunCommand(std::string(LP_LAYERPIPE_BIN) + " init-model --preset demo --out " +
                                   dir + " --seed 3 --tokenizer " + FixtureDir("qwen3-tiny"),
                               &code);
  ASSERT_EQ(code, 0) << out;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 1500; ++i) prompt.push_back((i * 7919) % 150000);
  std::vector<int32_t> one_stage, two_stages;
  {
    Cluster cluster(dir, 1,
                    {.limits_yaml = "{max_batch: 2, max_context: 1600, max_step_tokens: 1600}"});
    ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
    Outcome o = Generate(cluster, Ids(prompt, 3), 300);
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    one_stage = o.ids;
  }
  {
    Cluster cluster(dir, 2,
                    {.limits_yaml = "{max_batch: 2, max_context: 1600, max_step_tokens: 1600}"});
    ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
    Outcome o = Generate(cluster, Ids(prompt, 3), 300);
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    two_stages = o.ids;
  }
  EXPECT_EQ(one_stage.size(), 3u);
  EXPECT_EQ(one_stage, two_stages);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lp
