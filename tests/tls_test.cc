// Secure links: a CPU cluster on the qwen3-tiny fixture with mutual TLS between the coordinator
// and its workers, TLS with client certificates and API tokens on its public API. Certificates
// come from the openssl command (make_test_certs.sh); the clients are Debian's python3-grpcio
// (tls_client.py), curl and the `layerpipe` CLI.
#include "common/tls.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <string>

#include "cluster_client.h"
#include "cluster_harness.h"
#include "run_command.h"

namespace lp::testing {
namespace {

const std::string kModel = std::string(LP_FIXTURES) + "/qwen3-tiny";
const std::string kTests = std::string(LP_FIXTURES) + "/..";

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/lp_tls_" + std::to_string(getpid()));
    const CommandResult made = RunCommand(kTests + "/make_test_certs.sh " + *dir_);
    ASSERT_EQ(made.exit_code, 0) << made.out;
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string File(const std::string& name) { return *dir_ + "/" + name; }
  // A PEM pair of make_test_certs.sh as a cluster file's {cert, key}.
  static std::string Pair(const std::string& name) {
    return "cert: " + File(name + ".pem") + ", key: " + File(name + ".key");
  }
  static TlsFiles Client(const std::string& name) {
    return {File("ca.pem"), File(name + ".pem"), File(name + ".key")};
  }
  static std::shared_ptr<grpc::ChannelCredentials> Credentials(const TlsFiles& files) {
    auto c = ChannelCredentials(files, "test");
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }

  // Two CPU workers, every link mutual TLS from one CA (worker 1 with `worker1` instead); the
  // API over TLS asking for client certificates and a token from `tokens_file`.
  static ClusterOptions SecureCluster(const std::string& tokens, const std::string& worker1) {
    const std::string tokens_file = File("tokens.txt");
    std::ofstream(tokens_file) << tokens;
    ClusterOptions o;
    o.http = true;
    o.extra_yaml = "tls: {ca: " + File("ca.pem") + ", " + Pair("coordinator") + "}\n";
    o.coordinator_yaml = "  api_tls: {" + Pair("coordinator") + ", client_ca: " + File("ca.pem") +
                         "}\n  auth: {tokens_file: " + tokens_file + "}\n";
    o.worker_yaml = {", tls: {" + Pair("worker") + "}", ", tls: {" + Pair(worker1) + "}"};
    o.health_credentials = Credentials(Client("client"));
    return o;
  }

  // tls_client.py's answer ("METHOD CODE" lines) to `methods` at `endpoint`.
  static std::string Python(const std::string& endpoint, const std::string& flags,
                            const std::string& methods) {
    return RunCommand("/usr/bin/python3 " + kTests + "/tls_client.py " + endpoint + " " + flags +
                      " " + methods)
        .out;
  }
  static std::string ClientFlags(const std::string& name) {
    return "--ca " + File("ca.pem") + " --cert " + File(name + ".pem") + " --key " +
           File(name + ".key");
  }

  static inline std::string* dir_ = nullptr;
};

// The code of a Generate stream of 4 tokens through `stub`-like credentials and `token`.
grpc::Status GenerateWith(const Cluster& c, std::shared_ptr<grpc::ChannelCredentials> credentials,
                          const std::string& token, std::vector<int32_t>* ids) {
  auto stub =
      layerpipe::v1::Inference::NewStub(grpc::CreateChannel(c.endpoint(), std::move(credentials)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  auto reader = stub->Generate(&ctx, Ids({1, 2, 3}, 4));
  layerpipe::v1::GenerateResponse resp;
  while (reader->Read(&resp))
    ids->insert(ids->end(), resp.token_ids().begin(), resp.token_ids().end());
  return reader->Finish();
}

TEST_F(TlsTest, ServesOverMutualTlsOnlyToClientsWithACertificateAndAToken) {
  Cluster c(kModel, 2, SecureCluster("# the test's token\nsecret-1\n", "worker"));
  ASSERT_TRUE(c.WaitHealth(Health::kServing, 60000)) << c.log("coordinator");

  std::vector<int32_t> ids;
  ASSERT_TRUE(GenerateWith(c, Credentials(Client("client")), "secret-1", &ids).ok());
  EXPECT_EQ(ids.size(), 4u);
  std::vector<int32_t> none;
  EXPECT_EQ(GenerateWith(c, Credentials(Client("client")), "", &none).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GenerateWith(c, Credentials(Client("client")), "secret-2", &none).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GenerateWith(c, grpc::InsecureChannelCredentials(), "secret-1", &none).error_code(),
            grpc::StatusCode::UNAVAILABLE);  // no TLS: no connection
  EXPECT_EQ(GenerateWith(c, Credentials({File("ca.pem"), "", ""}), "secret-1", &none).error_code(),
            grpc::StatusCode::UNAVAILABLE);  // no client certificate
  EXPECT_TRUE(none.empty());

  // A client nobody here wrote: health and reflection open, the API behind the token.
  const std::string info = "/layerpipe.v1.Inference/GetModelInfo";
  const std::string open =
      "/grpc.health.v1.Health/Check /grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
  EXPECT_EQ(Python(c.endpoint(), ClientFlags("client"), info + " " + open),
            info +
                " UNAUTHENTICATED\n/grpc.health.v1.Health/Check OK\n"
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo OK\n");
  EXPECT_EQ(Python(c.endpoint(), ClientFlags("client") + " --token secret-1", info),
            info + " OK\n");
  EXPECT_EQ(Python(c.endpoint(), "--token secret-1", info), info + " UNAVAILABLE\n");
  EXPECT_EQ(Python(c.endpoint(),
                   "--ca " + File("ca.pem") + " --cert " + File("rogue-coordinator.pem") +
                       " --key " + File("rogue-coordinator.key") + " --token secret-1",
                   info),
            info + " UNAVAILABLE\n");  // a client certificate from another CA

  // The CLI, with the token from the environment.
  const CommandResult status =
      RunCommand("LAYERPIPE_API_TOKEN=secret-1 " + std::string(LP_LAYERPIPE_BIN) +
                 " status --endpoint " + c.endpoint() + " " + ClientFlags("client"));
  EXPECT_EQ(status.exit_code, 0) << status.out;
  EXPECT_NE(status.out.find("SERVING"), std::string::npos) << status.out;
  const CommandResult refused = RunLayerpipe("generate --endpoint " + c.endpoint() + " " +
                                             ClientFlags("client") + " --prompt-ids 1,2 --token x");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.out.find("UNAUTHENTICATED"), std::string::npos) << refused.out;

  // The HTTP API over HTTPS through curl: 401 without the token, /health open.
  const std::string https = "https://127.0.0.1:" + c.http_url().substr(c.http_url().rfind(':') + 1);
  const std::string curl = "curl -s -o /dev/null -w '%{http_code}' --cacert " + File("ca.pem") +
                           " --cert " + File("client.pem") + " --key " + File("client.key") + " ";
  EXPECT_EQ(RunCommand(curl + https + "/v1/models").out, "401");
  EXPECT_EQ(RunCommand(curl + "-H 'Authorization: Bearer secret-2' " + https + "/v1/models").out,
            "401");
  EXPECT_EQ(RunCommand(curl + "-H 'Authorization: Bearer secret-1' " + https + "/v1/models").out,
            "200");
  EXPECT_EQ(RunCommand(curl + https + "/health").out, "200");

  // SIGHUP rereads the tokens file.
  std::ofstream(File("tokens.txt")) << "secret-2\n";
  c.SignalCoordinator(SIGHUP);
  for (int i = 0; i < 50 && c.log("coordinator").find("reread 1 API tokens") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(GenerateWith(c, Credentials(Client("client")), "secret-1", &none).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ids.clear();
  EXPECT_TRUE(GenerateWith(c, Credentials(Client("client")), "secret-2", &ids).ok());
  EXPECT_EQ(ids.size(), 4u);
}

TEST_F(TlsTest, AWorkerAnswersOnlyTheCoordinator) {
  Cluster c(kModel, 2, SecureCluster("secret-1\n", "worker"));
  ASSERT_TRUE(c.WaitHealth(Health::kServing, 60000)) << c.log("coordinator");
  const std::string stats = "/layerpipe.v1.Worker/Stats";
  // The coordinator's certificate passes; another of the cluster's CA is not the coordinator;
  // one from another CA, or none, gets no connection.
  EXPECT_EQ(Python(c.worker_endpoint(0), ClientFlags("coordinator"), stats), stats + " OK\n");
  EXPECT_EQ(Python(c.worker_endpoint(0), ClientFlags("client"), stats),
            stats + " PERMISSION_DENIED\n");
  EXPECT_EQ(Python(c.worker_endpoint(0),
                   "--ca " + File("ca.pem") + " --cert " + File("rogue-coordinator.pem") +
                       " --key " + File("rogue-coordinator.key"),
                   stats),
            stats + " UNAVAILABLE\n");
  EXPECT_EQ(Python(c.worker_endpoint(0), "", stats), stats + " UNAVAILABLE\n");
}

TEST_F(TlsTest, TheCoordinatorRefusesAWorkerWithACertificateFromAnotherCa) {
  Cluster c(kModel, 2, SecureCluster("secret-1\n", "rogue-worker"));
  // Once both workers run (the rogue one would answer a caller it trusts), the coordinator
  // still does not serve: it takes no worker whose certificate is not its CA's.
  for (int i = 0; i < 600 && (c.log("w0").find("ready") == std::string::npos ||
                              c.log("w1").find("ready") == std::string::npos);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(c.log("w1").find("ready"), std::string::npos) << c.log("w1");
  EXPECT_FALSE(c.WaitHealth(Health::kServing, 5000));
  EXPECT_NE(c.log("coordinator").find("worker 'w1'"), std::string::npos) << c.log("coordinator");
}

}  // namespace
}  // namespace lp::testing
