// The OpenAI-compatible HTTP API on a 3-worker CPU cluster, through clients nobody here wrote:
// the official `openai` npm package (tests/openai/client.mjs, installed by scripts/setup.sh) and
// curl. Server-sent events, errors in the reference API's shape and status codes, /health,
// and a client that leaves mid-stream having its sequence released on every worker.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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
  for (const Case& c : {Case{"/v1/chat/completions", "{not json", 400, ""},
                        Case{"/v1/completions", R"({"prompt":[1,2],"temperature":-1})", 400,
                             "temperature"},
                        Case{"/v1/completions", R"({"prompt":[1,2],"top_p":"high"})", 400, "top_p"},
                        Case{"/v1/completions", R"({"prompt":[1,2],"max_tokens":100000})", 400,
                             "max_tokens"},
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

}  // namespace
}  // namespace lp
