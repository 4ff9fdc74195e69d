// The cluster file (common/cluster_config.h): every key, every device_map form, defaults, path
// resolution, and errors that name the key and the line; the example files in deploy/.
#include "common/cluster_config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/byte_size.h"
#include "common/device.h"
#include "common/placement.h"
#include "common/presets.h"
#include "fixture_util.h"

namespace lp {
namespace {

const char kFull[] = R"(# a comment
model:
  path: /models/Qwen3-8B
device_map: auto
max_memory: {"cuda:0": 20GiB, "cuda:1": 24GiB}
coordinator:
  listen: "0.0.0.0:7000"
workers:
  - {name: gpu0, device: "cuda:0", address: "10.0.0.5:7001"}
  - {name: gpu1, device: "cuda:1", address: "10.0.0.5:7002"}
limits: {max_batch: 8, max_context: 8192, max_step_tokens: 1024}
)";

TEST(ClusterConfig, ParsesEveryKey) {
  auto c = ParseClusterConfig(kFull, "/etc");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_path, "/models/Qwen3-8B");
  EXPECT_EQ(c->device_map.strategy, DeviceMapStrategy::kAuto);
  EXPECT_EQ(c->max_memory.at("cuda:0"), 20 * kGiB);
  EXPECT_EQ(c->max_memory.at("cuda:1"), 24 * kGiB);
  EXPECT_EQ(c->coordinator_listen, "0.0.0.0:7000");
  ASSERT_EQ(c->workers.size(), 2u);
  EXPECT_EQ(c->workers[1].name, "gpu1");
  EXPECT_EQ(c->workers[1].device, "cuda:1");
  EXPECT_EQ(c->workers[1].address, "10.0.0.5:7002");
  EXPECT_EQ(c->limits.max_batch, 8);
  EXPECT_EQ(c->limits.max_context, 8192);
  EXPECT_EQ(c->limits.max_step_tokens, 1024);
  EXPECT_EQ(FindWorker(*c, "gpu1"), 1);
}

TEST(ClusterConfig, DefaultsAndRelativeModelPath) {
  auto c = ParseClusterConfig(
      "model: {path: ../models/demo}\nworkers:\n  - {name: a, device: cpu:0, address: h:1}\n",
      "/srv/deploy");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_path, "/srv/models/demo");  // relative to the cluster file's folder
  EXPECT_EQ(c->device_map.strategy, DeviceMapStrategy::kAuto);
  EXPECT_TRUE(c->max_memory.empty());
  EXPECT_EQ(c->coordinator_listen, "127.0.0.1:7000");
  EXPECT_EQ(c->limits.max_batch, 16);
  EXPECT_EQ(c->limits.max_context, 4096);
  EXPECT_EQ(c->limits.max_step_tokens, 2048);
  EXPECT_EQ(c->limits.kv_block_tokens, 16);
  EXPECT_EQ(c->limits.kv_blocks, 0);  // what the budgets hold
}

TEST(ClusterConfig, KvCacheBlocks) {
  auto c = ParseClusterConfig(
      "model: {path: /m}\nlimits: {max_context: 1024, kv_block_tokens: 32, kv_blocks: 100}\n"
      "workers:\n  - {name: a, device: cpu:0, address: h:1}\n",
      "/");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.kv_block_tokens, 32);
  EXPECT_EQ(c->limits.kv_blocks, 100);
}

std::string WithDeviceMap(const std::string& device_map, const std::string& extra = "") {
  return "model: {path: /m}\ndevice_map: " + device_map + "\n" + extra +
         "workers:\n"
         "  - {name: g0, device: \"cuda:0\", address: \"h1:7001\"}\n"
         "  - {name: g1, device: \"cuda:1\", address: \"h1:7002\"}\n"
         "  - {name: far, device: \"cuda:0\", address: \"h2:7001\"}\n";
}

TEST(ClusterConfig, EveryDeviceMapForm) {
  const std::vector<std::pair<std::string, DeviceMapStrategy>> strategies = {
      {"auto", DeviceMapStrategy::kAuto},
      {"balanced", DeviceMapStrategy::kBalanced},
      {"balanced_low_0", DeviceMapStrategy::kBalancedLow0},
      {"sequential", DeviceMapStrategy::kSequential},
      {"layered", DeviceMapStrategy::kLayered}};
  for (const auto& [text, strategy] : strategies) {
    auto c = ParseClusterConfig(WithDeviceMap(text), "/");
    ASSERT_TRUE(c.ok()) << text << ": " << c.status();
    EXPECT_EQ(c->device_map.strategy, strategy) << text;
    EXPECT_EQ(StrategyName(strategy), text);
  }
  // A bare device, an integer, {"": device}, a worker name: one entry for the root module.
  for (const std::string form : {"\"cuda:1\"", "1", "{\"\": \"cuda:1\"}", "g1", "{\"\": 1}"}) {
    auto c = ParseClusterConfig(WithDeviceMap(form), "/");
    ASSERT_TRUE(c.ok()) << form << ": " << c.status();
    EXPECT_EQ(c->device_map.strategy, DeviceMapStrategy::kExplicit);
    ASSERT_EQ(c->device_map.entries.size(), 1u) << form;
    EXPECT_EQ(c->device_map.entries[0].module, "");
    EXPECT_EQ(c->device_map.entries[0].worker, 1) << form;
  }
  auto c = ParseClusterConfig(
      WithDeviceMap("\n  model.embed_tokens: g0\n  model.layers.0: 1\n  lm_head: far"), "/");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->device_map.entries.size(), 3u);
  EXPECT_EQ(c->device_map.entries[1].module, "model.layers.0");
  EXPECT_EQ(c->device_map.entries[1].target, "cuda:1");
  EXPECT_EQ(c->device_map.entries[1].line, 4);
  EXPECT_EQ(c->device_map.entries[2].worker, 2);
}

TEST(ClusterConfig, MaxMemoryByDeviceOrWorkerInEverySpelling) {
  auto c = ParseClusterConfig(
      WithDeviceMap("auto", "max_memory: {0: 10GiB, \"cuda:1\": 20GB, far: \"1.5 GiB\"}\n"), "/");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_memory.at("cuda:0"), 10 * kGiB);  // both hosts' cuda:0
  EXPECT_EQ(c->max_memory.at("cuda:1"), 20'000'000'000ull);
  EXPECT_EQ(c->max_memory.at("far"), 3 * kGiB / 2);
}

TEST(ByteSize, ParsesHuggingFaceSpellings) {
  EXPECT_EQ(*ParseByteSize("20GiB"), 20 * kGiB);
  EXPECT_EQ(*ParseByteSize("20gib"), 20 * kGiB);
  EXPECT_EQ(*ParseByteSize("24GB"), 24'000'000'000ull);
  EXPECT_EQ(*ParseByteSize("512 MiB"), 512 * kMiB);
  EXPECT_EQ(*ParseByteSize("0.5GiB"), kGiB / 2);
  EXPECT_EQ(*ParseByteSize("1073741824"), kGiB);
  EXPECT_EQ(*ParseByteSize("2TiB"), 2048 * kGiB);
  for (const std::string bad : {"", "GiB", "20 GiBs", "-1GiB", "1.5", "lots", "1e3GB"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(3 * kMiB / 2), "1.50 MiB");
  EXPECT_EQ(FormatBytes(20 * kGiB), "20.00 GiB");
}

TEST(Device, HuggingFaceSpellings) {
  EXPECT_EQ(Device::Parse("0")->ToString(), "cuda:0");
  EXPECT_EQ(Device::Parse("cuda:3")->ToString(), "cuda:3");
  EXPECT_EQ(Device::Parse("cuda")->ToString(), "cuda:0");
  EXPECT_EQ(Device::Parse("cpu")->ToString(), "cpu:0");
  EXPECT_EQ(Device::Parse("cpu:2")->ToString(), "cpu:2");
  EXPECT_EQ(*Device::Parse("cuda:1"), (Device{Device::Kind::kCuda, 1}));
  EXPECT_TRUE(IsCudaDevice("cuda:1"));
  EXPECT_FALSE(IsCudaDevice("cpu:1"));
  for (const std::string bad : {"gpu:1", "cuda:", "cuda:x", "cuda:-1", "", "mps"}) {
    EXPECT_FALSE(Device::Parse(bad).ok()) << bad;
  }
  EXPECT_NE(Device::Parse("disk").status().message().find("does not offload"), std::string::npos);
}

struct BadFile {
  std::string yaml;
  std::string message;  // a part of the error, with the line
};

TEST(ClusterConfig, ErrorsNameTheKeyAndTheLine) {
  const std::string w0 = "  - {name: g0, device: \"cuda:0\", address: \"h:7001\"}\n";
  const std::string head = "model: {path: /m}\n";
  const std::vector<BadFile> cases = {
      {"workers:\n" + w0, "model: missing"},
      {"model: {}\nworkers:\n" + w0, "line 1, model.path: missing"},
      {head + "max_memroy: {0: 1GiB}\nworkers:\n" + w0, "line 2, max_memroy: unknown key"},
      {head + "workers: []\n", "line 2, workers: must be a non-empty list"},
      {head + "workers:\n" + w0 + "  - {name: g0, device: \"cuda:1\", address: \"h:7002\"}\n",
       "line 4, workers[1].name: used twice"},
      {head + "workers:\n" + w0 + "  - {name: g1, device: \"cuda:1\", address: \"h:7001\"}\n",
       "line 4, workers[1].address: 'h:7001' is also worker g0's"},
      {head + "workers:\n" + w0 + "  - {name: g1, device: \"cuda:0\", address: \"h:7002\"}\n",
       "line 4, workers[1].device: cuda:0 of host h is also worker g0's: workers sharing a "
       "device need max_memory entries by worker name"},
      {head + "workers:\n  - {name: g0, device: \"gpu:0\", address: \"h:7001\"}\n",
       "line 3, workers[0].device: 'gpu:0' is not a device"},
      {head + "workers:\n  - {name: g0, device: \"cuda:0\", address: \"h\"}\n",
       "line 3, workers[0].address: 'h' is not host:port"},
      {head + "workers:\n  - {name: g0, device: \"cuda:0\", address: \"h:7001\", gpu: 1}\n",
       "line 3, workers[0].gpu: unknown key"},
      {head + "device_map: balance\nworkers:\n" + w0,
       "line 2, device_map: unknown strategy 'balance' (known: auto, balanced"},
      {head + "device_map: \"cuda:5\"\nworkers:\n" + w0,
       "line 2, device_map: no worker has device cuda:5 (workers: g0 cuda:0)"},
      {head + "device_map: {lm_head: disk}\nworkers:\n" + w0,
       "line 2, device_map[\"lm_head\"]: 'disk': layerpipe keeps every module"},
      {head + "device_map:\n  model.layers.0: 0\n  lm_head: 7\nworkers:\n" + w0,
       "line 4, device_map[\"lm_head\"]: no worker has device cuda:7"},
      {head + "device_map: 0\nworkers:\n" + w0 +
           "  - {name: g2, device: \"cuda:0\", address: \"other:7001\"}\n",
       "line 2, device_map: cuda:0 is the device of several workers (g0 at h:7001, g2 at "
       "other:7001): name the worker instead"},
      {head + "max_memory: {\"cuda:0\": lots}\nworkers:\n" + w0,
       "line 2, max_memory[cuda:0]: 'lots' is not a size"},
      {head + "max_memory:\n  cuda:3: 1GiB\nworkers:\n" + w0,
       "line 3, max_memory[cuda:3]: no worker has device cuda:3"},
      {head + "limits: {max_batch: 0}\nworkers:\n" + w0,
       "line 2, limits.max_batch: '0' is not a positive integer"},
      {head + "limits: {max_batch: 64, max_step_tokens: 32}\nworkers:\n" + w0,
       "limits.max_step_tokens: 32 is less than max_batch 64"},
      {head + "limits: {kv_block_tokens: 24}\nworkers:\n" + w0,
       "line 2, limits.kv_block_tokens: 24 is not a power of two from 16 to 256"},
      {head + "limits: {max_context: 1024, kv_blocks: 10}\nworkers:\n" + w0,
       "limits.kv_blocks: 10 blocks of 16 tokens cannot hold one sequence of max_context 1024 "
       "(64 blocks)"},
      {head + "coordinator: {listen: 7000}\nworkers:\n" + w0,
       "line 2, coordinator.listen: '7000' is not host:port"},
      {head + "workers:\n  - [g0, cuda:0\n", "line 4"},  // YAML syntax: unclosed list
  };
  for (const BadFile& c : cases) {
    auto config = ParseClusterConfig(c.yaml, "/");
    ASSERT_FALSE(config.ok()) << c.yaml;
    EXPECT_NE(config.status().message().find(c.message), std::string::npos)
        << c.yaml << "\n  got: " << config.status().message();
  }
}

TEST(ClusterConfig, WorkersMayShareADeviceWithABudgetEach) {
  auto c = ParseClusterConfig(R"(model: {path: /m}
max_memory: {g0: 30GiB, g1: 30GiB}
workers:
  - {name: g0, device: "cuda:0", address: "h:7001"}
  - {name: g1, device: "cuda:0", address: "h:7002"}
)",
                              "/");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->workers[1].device, "cuda:0");
}

TEST(ClusterConfig, TransportPerLink) {
  const std::string workers = R"(workers:
  - {name: a, device: "cuda:0", address: "h1:7001"}
  - {name: b, device: "cuda:1", address: "h1:7002"}
  - {name: c, device: "cuda:0", address: "h2:7001"}
  - {name: d, device: "cpu:0", address: "h2:7002"}
)";
  auto c = ParseClusterConfig("model: {path: /m}\n" + workers, "/");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(PlannedTransport(*c, 0), "token ids");
  EXPECT_EQ(PlannedTransport(*c, 1), "cuda-ipc");  // two GPUs of one host
  EXPECT_EQ(PlannedTransport(*c, 2), "grpc");      // another host
  EXPECT_EQ(PlannedTransport(*c, 3), "grpc");      // a CPU worker
  auto g = ParseClusterConfig("model: {path: /m}\ntransport: grpc\n" + workers, "/");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(PlannedTransport(*g, 1), "grpc");
  EXPECT_FALSE(ParseClusterConfig("model: {path: /m}\ntransport: rdma\n" + workers, "/").ok());
}

TEST(ClusterConfig, BatchInvariantIsOffUnlessSaidAndMustBeABoolean) {
  const std::string workers = "workers:\n  - {name: a, device: \"cuda:0\", address: \"h:1\"}\n";
  auto off = ParseClusterConfig("model: {path: /m}\n" + workers, "/");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->batch_invariant);
  auto on = ParseClusterConfig("model: {path: /m}\nbatch_invariant: true\n" + workers, "/");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->batch_invariant);
  auto bad = ParseClusterConfig("model: {path: /m}\nbatch_invariant: maybe\n" + workers, "/");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("batch_invariant"), std::string::npos) << bad.status();
}

TEST(ClusterConfig, DecodeAheadIsOnUnlessSaidAndMustBeABoolean) {
  const std::string workers = "workers:\n  - {name: a, device: \"cuda:0\", address: \"h:1\"}\n";
  auto on = ParseClusterConfig("model: {path: /m}\n" + workers, "/");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->decode_ahead);
  auto off = ParseClusterConfig("model: {path: /m}\ndecode_ahead: false\n" + workers, "/");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->decode_ahead);
  auto bad = ParseClusterConfig("model: {path: /m}\ndecode_ahead: 1\n" + workers, "/");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2, decode_ahead: must be true"), std::string::npos)
      << bad.status();
}

TEST(ClusterConfig, ResumeTimeoutDefaultsTo60SecondsAndZeroTurnsItOff) {
  const std::string workers = "workers:\n  - {name: a, device: \"cuda:0\", address: \"h:1\"}\n";
  auto dflt = ParseClusterConfig("model: {path: /m}\n" + workers, "/");
  ASSERT_TRUE(dflt.ok()) << dflt.status();
  EXPECT_EQ(dflt->resume_timeout_s, 60);
  for (const std::string v : {"0", "2.5"}) {
    auto c = ParseClusterConfig(
        "model: {path: /m}\nrecovery: {resume_timeout: " + v + "}\n" + workers, "/");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->resume_timeout_s, std::stod(v));
  }
  for (const std::string bad : {"{resume_timeout: -1}", "{resume_timeout: soon}",
                                "{resume_timeout: 100000}", "{resume_after: 5}"}) {
    auto c = ParseClusterConfig("model: {path: /m}\nrecovery: " + bad + "\n" + workers, "/");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("recovery"), std::string::npos) << c.status();
  }
}

TEST(ClusterConfig, TheHttpApiNeedsAPortOfItsOwnAndTheModelHasAName) {
  const std::string workers = "workers:\n  - {name: a, device: cpu, address: \"h:7001\"}\n";
  auto off = ParseClusterConfig("model: {path: /m/Qwen3-8B}\n" + workers, "/");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(off->http_listen.empty());
  EXPECT_EQ(off->model_name, "Qwen3-8B");  // the checkpoint directory's name
  auto on = ParseClusterConfig(
      "model: {path: /m/x, name: qwen}\ncoordinator: {listen: \"h:7000\", http_listen: "
      "\"h:8000\"}\n" +
          workers,
      "/");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(on->http_listen, "h:8000");
  EXPECT_EQ(on->model_name, "qwen");
  for (const std::string coordinator :
       {"{listen: \"h:7000\", http_listen: \"h:7000\"}",
        "{listen: \"h:7000\", http_listen: \"h:7001\"}", "{http_listen: \"nowhere\"}"}) {
    auto bad =
        ParseClusterConfig("model: {path: /m}\ncoordinator: " + coordinator + "\n" + workers, "/");
    ASSERT_FALSE(bad.ok()) << coordinator;
    EXPECT_NE(bad.status().message().find("http_listen"), std::string::npos) << bad.status();
  }
}

TEST(ClusterConfig, TlsFilesAreTakenFromTheFilesFolderAndMustComeInPairs) {
  auto c = ParseClusterConfig(R"(model: {path: /m}
tls: {ca: pki/ca.pem, cert: pki/co.pem, key: pki/co.key, coordinator_name: co}
coordinator:
  api_tls: {cert: /api.pem, key: /api.key, client_ca: pki/ca.pem}
  auth: {tokens_file: tokens}
workers:
  - {name: a, device: cpu, address: "h:7001", tls: {cert: a.pem, key: a.key}}
  - {name: b, device: "cpu:1", address: "h:7002"}
)",
                              "/etc/lp");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.ca, "/etc/lp/pki/ca.pem");
  EXPECT_EQ(c->coordinator_name, "co");
  EXPECT_EQ(c->api_tls.cert, "/api.pem");
  EXPECT_EQ(c->api_tls.ca, "/etc/lp/pki/ca.pem");
  EXPECT_EQ(c->tokens_file, "/etc/lp/tokens");
  EXPECT_EQ(WorkerTls(*c, 0).cert, "/etc/lp/a.pem");  // its own
  EXPECT_EQ(WorkerTls(*c, 0).ca, "/etc/lp/pki/ca.pem");
  EXPECT_EQ(WorkerTls(*c, 1).cert, "/etc/lp/pki/co.pem");  // the cluster's
  auto plain = ParseClusterConfig(
      "model: {path: /m}\nworkers:\n  - {name: a, device: cpu, address: \"h:7001\"}\n", "/");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->tls.cert.empty() && plain->api_tls.cert.empty() && plain->tokens_file.empty());
  EXPECT_EQ(plain->coordinator_name, "layerpipe-coordinator");

  const std::string worker = "  - {name: a, device: cpu, address: \"h:7001\"";
  for (const auto& [yaml, key] : std::vector<std::pair<std::string, std::string>>{
           {"tls: {cert: c, key: k}\nworkers:\n" + worker + "}\n", "tls.ca"},
           {"tls: {ca: a, cert: c}\nworkers:\n" + worker + "}\n", "tls"},
           {"tls: {ca: a, cert: c, key: k, crt: x}\nworkers:\n" + worker + "}\n", "tls.crt"},
           {"workers:\n" + worker + ", tls: {cert: c, key: k}}\n", "workers[0].tls"},
           {"coordinator: {api_tls: {key: k}}\nworkers:\n" + worker + "}\n", "coordinator.api_tls"},
           {"coordinator: {auth: {tokens: t}}\nworkers:\n" + worker + "}\n",
            "coordinator.auth.tokens"}}) {
    auto bad = ParseClusterConfig("model: {path: /m}\n" + yaml, "/");
    ASSERT_FALSE(bad.ok()) << yaml;
    EXPECT_NE(bad.status().message().find(key), std::string::npos) << bad.status();
  }
}

TEST(ClusterConfig, AddressesAreComparedAsEndpointsNotStrings) {
  const std::string head = "model: {path: /m}\nworkers:\n";
  auto same = ParseClusterConfig(head +
                                     "  - {name: a, device: cpu, address: \"localhost:7411\"}\n"
                                     "  - {name: b, device: cpu, address: \"127.0.0.1:7411\"}\n",
                                 "/");
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.status().message().find("'127.0.0.1:7411' is also worker a's"), std::string::npos)
      << same.status();
  EXPECT_TRUE(ParseClusterConfig(head + "  - {name: a, device: cpu, address: \"localhost:7411\"}\n"
                                        "  - {name: b, device: cpu, address: \"127.0.0.1:7412\"}\n",
                                 "/")
                  .ok());
  auto coordinator = ParseClusterConfig(
      head + "  - {name: a, device: cpu, address: \"localhost:7000\"}\n", "/");  // default listen
  ASSERT_FALSE(coordinator.ok());
  EXPECT_NE(coordinator.status().message().find("coordinator.listen: '127.0.0.1:7000' is also "
                                                "worker a's address (localhost:7000)"),
            std::string::npos)
      << coordinator.status();
  EXPECT_TRUE(SameEndpoint("[::1]:80", "[::1]:80"));
  EXPECT_FALSE(SameEndpoint("10.0.0.5:7001", "10.0.0.6:7001"));
}

TEST(ClusterConfig, LoadNamesTheFile) {
  auto missing = LoadClusterConfig("/nonexistent/cluster.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/cluster.yaml"), std::string::npos);
}

// Every file under deploy/ parses; the examples (Qwen3-8B, 36 layers) plan on the preset.
TEST(DeployFiles, ParseAndPlan) {
  namespace fs = std::filesystem;
  const fs::path deploy = fs::path(LP_FIXTURES) / ".." / ".." / "deploy";
  auto demo = LoadClusterConfig((deploy / "demo-cpu.yaml").string());
  ASSERT_TRUE(demo.ok()) << demo.status();
  EXPECT_EQ(fs::path(demo->model_path).filename(), "demo-model");
  EXPECT_EQ(demo->workers.size(), 3u);
  EXPECT_EQ(demo->coordinator_listen, "127.0.0.1:7100");
  const ModelConfig demo_model = FindPreset("demo")->config;
  EXPECT_TRUE(PlanCluster(*demo, demo_model, *EstimateWeightSizes(demo_model)).ok());

  const ModelConfig model = FindPreset("qwen3-8b")->config;
  int examples = 0;
  for (const auto& entry : fs::directory_iterator(deploy / "examples")) {
    if (entry.path().extension() != ".yaml") continue;
    ++examples;
    auto c = LoadClusterConfig(entry.path().string());
    ASSERT_TRUE(c.ok()) << c.status();
    auto plan = PlanCluster(*c, model, *EstimateWeightSizes(model));
    EXPECT_TRUE(plan.ok()) << entry.path() << ": " << plan.status();
  }
  EXPECT_GE(examples, 7);
}

}  // namespace
}  // namespace lp
