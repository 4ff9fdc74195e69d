// The OpenAI-compatible HTTP API on a 3-worker CPU cluster, through clients nobody here wrote:
// the official `openai` npm package (tests/openai/client.mjs, installed by scripts/setup.sh) and
// curl. Server-sent events, errors in the reference API's shape and status codes, /health, a
// client that leaves mid-stream having its sequence released on every worker, and the metrics
// (read by Prometheus' own Python parser) and request log.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include "cluster_client.h"
#include "cluster_harness.h"
#include "run_command.h"

namespace lp {
namespace {

using lp::testing::ActiveSequences;
using lp::testing::Cluster;
using lp::testing::FixtureDir;
using lp::testing::Process;
using lp::testing::ReadFile;
using lp::testing::RunCommand;
using lp::testing::WaitAllReleased;

const std::string kOpenAiDir = std::string(LP_FIXTURES) + "/../openai";

Cluster HttpCluster() {
  lp::testing::ClusterOptions o;
  o.http = true;
  return Cluster(FixtureDir("qwen3-tiny"), 3, o);
}

// curl's status code and body for a request ("-d BODY" posts JSON).
struct Reply {
  int status;
  std::string body;
};
Reply Curl(const Cluster& c, const std::string& path, const std::string& body = "") {
  const std::string out = ::testing::TempDir() + "/curl_body_" + std::to_string(getpid());
  std::string cmd = "curl -s -o " + out + " -w '%{http_code}' " + c.http_url() + path;
  if (!body.empty()) cmd += " -H 'Content-Type: application/json' -d '" + body + "'";
  const auto r = RunCommand(cmd);
  return {std::atoi(r.out.c_str()), ReadFile(out)};
}

TEST(HttpApi, TheOpenAiNpmClientGetsWhatTheReferenceApiPromises) {
  if (!std::filesystem::exists(kOpenAiDir + "/node_modules/openai/package.json") ||
      RunCommand("node --version").exit_code != 0) {
    GTEST_SKIP() << "node or the openai npm package is missing (scripts/setup.sh installs them "
                    "into tests/openai; npm unreachable?)";
  }
  Cluster cluster = HttpCluster();
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  const auto r =
      RunCommand("node " + kOpenAiDir + "/client.mjs " + cluster.http_url() + "/v1 qwen3-tiny");
  EXPECT_EQ(r.exit_code, 0) << r.out << cluster.log("coordinator");
  EXPECT_NE(r.out.find("\"ok\":true"), std::string::npos) << r.out;
}

TEST(HttpApi, TheOpenAiNpmClientNeedsTheApiTokenWhereOneIsAsked) {
  if (!std::filesystem::exists(kOpenAiDir + "/node_modules/openai/package.json") ||
      RunCommand("node --version").exit_code != 0) {
    GTEST_SKIP() << "node or the openai npm package is missing (scripts/setup.sh installs them "
                    "into tests/openai; npm unreachable?)";
  }
  const std::string tokens = ::testing::TempDir() + "/lp_tokens_" + std::to_string(getpid());
  std::ofstream(tokens) << "sk-test-1\n";
  lp::testing::ClusterOptions o;
  o.http = true;
  o.coordinator_yaml = "  auth: {tokens_file: " + tokens + "}\n";
  Cluster cluster(FixtureDir("qwen3-tiny"), 2, o);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  EXPECT_EQ(Curl(cluster, "/health").status, 200);  // open
  EXPECT_EQ(Curl(cluster, "/metrics").status, 401);
  const auto r = RunCommand("node " + kOpenAiDir + "/auth.mjs " + cluster.http_url() +
                            "/v1 qwen3-tiny sk-test-1");
  EXPECT_EQ(r.exit_code, 0) << r.out << cluster.log("coordinator");
  EXPECT_NE(r.out.find("\"ok\":true"), std::string::npos) << r.out;
}

TEST(HttpApi, CurlGetsServerSentEventsAndErrorsInTheReferenceShape) {
  Cluster cluster = HttpCluster();
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  Reply health = Curl(cluster, "/health");
  EXPECT_EQ(health.status, 200) << health.body;

  const Reply sse = Curl(cluster, "/v1/chat/completions",
                         R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,)"
                         R"("temperature":0,"ignore_eos":true,"stream":true})");
  EXPECT_EQ(sse.status, 200);
  int chunks = 0;
  std::istringstream lines(sse.body);
  std::string line, last;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    ASSERT_EQ(line.rfind("data: ", 0), 0u) << line;
    last = line;
    if (line == "data: [DONE]") continue;
    const auto j = nlohmann::json::parse(line.substr(6));
    EXPECT_EQ(j["object"], "chat.completion.chunk");
    ++chunks;
  }
  EXPECT_EQ(last, "data: [DONE]");
  EXPECT_EQ(chunks, 1 + 4 + 1) << sse.body;  // the role, a chunk per token, the finish

  struct Case {
    std::string path, body;
    int status;
    std::string param;
  };
  for (const Case& c :
       {Case{"/v1/chat/completions", "{not json", 400, ""},
        Case{"/v1/completions", R"({"prompt":[1,2],"temperature":-1})", 400, "temperature"},
        Case{"/v1/completions", R"({"prompt":[1,2],"top_p":"high"})", 400, "top_p"},
        Case{"/v1/completions", R"({"prompt":[1,2],"max_tokens":100000})", 400, "max_tokens"},
        Case{"/v1/completions", R"({"prompt":["a","b"]})", 400, "prompt"},
        Case{"/v1/chat/completions", R"({"messages":[]})", 400, "messages"},
        Case{"/v1/completions", R"({"model":"gpt-9","prompt":"x"})", 404, "model"},
        Case{"/v1/embeddings", R"({"input":"x"})", 404, ""}}) {
    const Reply r = Curl(cluster, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.path << " " << c.body << ": " << r.body;
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string()) << r.body;
    EXPECT_TRUE(j["error"]["type"].is_string()) << r.body;
    if (!c.param.empty()) EXPECT_EQ(j["error"]["param"], c.param) << r.body;
  }
  // The cluster still serves after all that.
  const Reply ok = Curl(cluster, "/v1/completions", R"({"prompt":[1,2,3],"max_tokens":2})");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST(HttpApi, AClientThatLeavesMidStreamHasItsSequenceReleased) {
  Cluster cluster = HttpCluster();
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  const std::string log = ::testing::TempDir() + "/curl_stream_" + std::to_string(getpid());
  std::filesystem::remove(log);
  Process curl({"/usr/bin/curl", "-sN", cluster.http_url() + "/v1/completions", "-H",
                "Content-Type: application/json", "-d",
                R"({"prompt":[1,2,3],"max_tokens":240,"ignore_eos":true,"stream":true})"},
               log);
  for (int i = 0; i < 200 && ReadFile(log).find("data: ") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(ReadFile(log).find("data: "), std::string::npos) << cluster.log("coordinator");
  EXPECT_EQ(ActiveSequences(cluster), (std::vector<int64_t>{1, 1, 1}));
  curl.Kill(SIGKILL);
  EXPECT_EQ(WaitAllReleased(cluster, 3), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(ReadFile(log).find("[DONE]"), std::string::npos) << "the stream had ended already";
}

// The coordinator's metrics as Prometheus' own Python parser reads them: sample name + labels
// (JSON, keys sorted) -> value.
std::map<std::string, double> Scrape(const std::string& url) {
  const auto r =
      RunCommand("curl -sf " + url +
                 " | /usr/bin/python3 -c 'import sys, json\n"
                 "from prometheus_client.parser import text_string_to_metric_families as parse\n"
                 "print(json.dumps({s.name + json.dumps(s.labels, sort_keys=True): s.value\n"
                 "  for f in parse(sys.stdin.read()) for s in f.samples}))'");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_TRUE(j.is_object()) << r.out;
  std::map<std::string, double> out;
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) out[k] = v.get<double>();
  }
  return out;
}

TEST(HttpApi, MetricsCountRequestsAndTokensAndEveryRequestIsLogged) {
  lp::testing::ClusterOptions o;
  o.http = true;
  o.worker_metrics = true;
  Cluster cluster(FixtureDir("qwen3-tiny"), 3, o);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  const std::string url = cluster.http_url() + "/metrics";
  auto before = Scrape(url);
  std::vector<std::future<Reply>> load;
  for (int i = 0; i < 6; ++i) {
    load.push_back(std::async(std::launch::async, [&] {
      return Curl(cluster, "/v1/completions",
                  R"({"prompt":[1,2,3],"max_tokens":4,"ignore_eos":true,"stream":true})");
    }));
  }
  EXPECT_FALSE(Scrape(url).empty());  // during the load
  for (auto& f : load) EXPECT_EQ(f.get().status, 200);
  EXPECT_EQ(Curl(cluster, "/v1/completions", R"({"prompt":[1],"temperature":-1})").status, 400);
  const auto tagged =
      RunCommand("curl -s -D - -o /dev/null -H 'x-request-id: req-42' " + cluster.http_url() +
                 "/v1/completions -d '{\"prompt\":[5,6],\"max_tokens\":3}'");
  EXPECT_NE(tagged.out.find("x-request-id: req-42"), std::string::npos) << tagged.out;
  const auto grpc = lp::testing::Generate(cluster, lp::testing::Ids({1, 2}, 3));
  EXPECT_TRUE(grpc.status.ok());

  auto after = Scrape(url);
  auto delta = [&](const std::string& key) { return after[key] - before[key]; };
  EXPECT_EQ(delta(R"(layerpipe_requests_total{"api": "http", "outcome": "OK"})"), 7);
  EXPECT_EQ(delta(R"(layerpipe_requests_total{"api": "http", "outcome": "INVALID_ARGUMENT"})"), 1);
  EXPECT_EQ(delta(R"(layerpipe_requests_total{"api": "grpc", "outcome": "OK"})"), 1);
  EXPECT_EQ(delta("layerpipe_prompt_tokens_total{}"), 6 * 3 + 2 + 2);
  EXPECT_EQ(delta("layerpipe_generation_tokens_total{}"), 6 * 4 + 3 + 3);
  EXPECT_EQ(delta("layerpipe_time_to_first_token_seconds_count{}"), 8);
  EXPECT_EQ(delta("layerpipe_request_duration_seconds_count{}"), 9);
  EXPECT_GT(delta(R"(layerpipe_step_duration_seconds_count{"kind": "decode"})"), 0);
  EXPECT_GT(delta(R"(layerpipe_step_duration_seconds_count{"kind": "prefill"})"), 0);
  EXPECT_EQ(after[R"(layerpipe_worker_active_sequences{"worker": "w0"})"], 0);
  EXPECT_EQ(after["layerpipe_queued_requests{}"], 0);
  // Every worker ran the steps and holds weights; the KV cache is on those with layers.
  double kv_bytes = 0;
  for (int w = 0; w < 3; ++w) {
    auto m = Scrape(cluster.worker_metrics_url(w));
    EXPECT_GT(m[R"(layerpipe_worker_step_duration_seconds_count{"kind": "decode"})"], 0) << w;
    EXPECT_GT(m[R"(layerpipe_worker_step_duration_seconds_count{"kind": "prefill"})"], 0) << w;
    EXPECT_GT(m["layerpipe_worker_step_tokens_sum{}"], 0) << w;
    EXPECT_GT(m["layerpipe_worker_weight_bytes{}"], 0) << w;
    EXPECT_EQ(m["layerpipe_worker_active_sequences{}"], 0) << w;
    const double grpc_inputs =
        m[R"(layerpipe_worker_handover_wait_seconds_count{"transport": "grpc"})"];
    if (w > 0) EXPECT_GT(grpc_inputs, 0) << w;  // activations from the previous worker
    if (w == 0) EXPECT_EQ(grpc_inputs, 0);      // token ids only
    kv_bytes += m["layerpipe_worker_kv_cache_bytes{}"];
  }
  EXPECT_GT(kv_bytes, 0);
  // One log line per finished request, under the client's id when it gave one.
  const std::string log = cluster.log("coordinator");
  EXPECT_NE(log.find("request id=req-42 api=http outcome=OK finish=length prompt_tokens=2 "
                     "completion_tokens=3"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("api=http outcome=INVALID_ARGUMENT"), std::string::npos) << log;
  EXPECT_NE(log.find("api=grpc outcome=OK"), std::string::npos) << log;
}

TEST(HttpApi, JsonRequestLogsCarryTheGrpcClientsRequestId) {
  lp::testing::ClusterOptions o;
  o.coordinator_args = {"--log-format", "json"};
  Cluster cluster(FixtureDir("qwen3-tiny"), 2, o);
  ASSERT_TRUE(cluster.WaitHealth(Health::kServing, 60000)) << cluster.log("coordinator");
  auto stub = lp::testing::Stub(cluster);
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-request-id", "grpc-9");
  auto reader = stub->Generate(&ctx, lp::testing::Ids({1, 2, 3}, 4));
  layerpipe::v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
  }
  ASSERT_TRUE(reader->Finish().ok());
  nlohmann::json line;
  for (int i = 0; i < 50 && line.is_null(); ++i) {  // the line follows the last response
    std::istringstream log(cluster.log("coordinator"));
    for (std::string l; std::getline(log, l);) {
      const auto j = nlohmann::json::parse(l, nullptr, false);
      if (j.is_object() && j.value("request_id", "") == "grpc-9") line = j;
    }
    if (line.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(line.is_object()) << cluster.log("coordinator");
  EXPECT_EQ(line["event"], "request");
  EXPECT_EQ(line["api"], "grpc");
  EXPECT_EQ(line["outcome"], "OK");
  EXPECT_EQ(line["finish"], "length");
  EXPECT_EQ(line["prompt_tokens"], 3);
  EXPECT_EQ(line["completion_tokens"], 4);
  EXPECT_GT(line["total_ms"].get<double>(), 0);
}

}  // namespace
}  // namespace lp
