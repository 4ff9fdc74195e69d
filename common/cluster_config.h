// The cluster file: which model, which workers (one per device, in pipeline order), how the
// model is placed on them (a Hugging Face style device_map), per-device memory budgets, and the
// limits that size every worker's KV cache. Parsing checks everything that does not need the
// model's config.json; placement (common/placement.h) checks the rest. See README.md, "The
// cluster file", for the schema.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/kv_pages.h"

namespace lp {

// PEM files of one side of a TLS link, paths resolved against the cluster file's folder.
struct TlsFiles {
  std::string ca;    // the CA a peer's certificate must chain to ("": none asked / system roots)
  std::string cert;  // this side's certificate (chain); "": no TLS
  std::string key;   // its private key
};

struct WorkerSpec {
  std::string name;     // unique; what the coordinator and `plan` call the worker
  std::string device;   // "cuda:N" (a GPU of the worker's host) or "cpu:N" (a CPU worker)
  std::string address;  // host:port the worker listens on
  TlsFiles tls;         // workers[i].tls: its own cert and key instead of tls's (ca: tls's)
};

// Sequences one step may carry (the GPU sampler's rows).
inline constexpr int64_t kMaxBatch = 1024;

struct ClusterLimits {
  int64_t max_batch = 16;          // sequences running at once (up to what the KV blocks allow)
  int64_t max_context = 4096;      // tokens per sequence (prompt + generated)
  int64_t max_step_tokens = 2048;  // tokens in one step, all sequences together (prefill chunk)
  int64_t kv_block_tokens = kDefaultKvBlockTokens;  // positions per KV-cache block
  int64_t kv_blocks = 0;  // KV-cache blocks per worker; 0: what the smallest budget holds
};

enum class DeviceMapStrategy { kExplicit, kAuto, kBalanced, kBalancedLow0, kSequential, kLayered };

// One `module: device` entry of an explicit device_map. A bare device (`device_map: "cuda:1"`)
// is stored as the single entry {"", ...}: "" is the root module, i.e. everything.
struct DeviceMapEntry {
  std::string module;  // Hugging Face module name or a prefix of some ("model", "model.layers")
  std::string target;  // as resolved: a device ("cuda:1") or a worker name
  int worker = -1;     // index into ClusterConfig::workers
  int line = 0;        // 1-based line in the cluster file, for messages
};

struct DeviceMap {
  DeviceMapStrategy strategy = DeviceMapStrategy::kAuto;
  std::vector<DeviceMapEntry> entries;  // kExplicit only, in file order
  int line = 0;
};

struct ClusterConfig {
  std::string model_path;  // resolved: relative paths are taken from the cluster file's folder
  std::string model_path_written;  // model.path as the file spells it (for error messages)
  std::string base_dir;            // the folder relative paths are taken from
  DeviceMap device_map;
  // Budgets in bytes, keyed by a normalized device ("cuda:0", "cpu:1") or a worker name. A
  // device key applies to every worker on that device (e.g. cuda:0 of several hosts); a worker
  // name wins over its device.
  std::map<std::string, uint64_t> max_memory;
  std::string model_name;  // model.name, else the checkpoint directory's name (the HTTP API's)
  std::string coordinator_listen;   // host:port
  std::string http_listen;          // host:port of the OpenAI-compatible HTTP API; empty: off
  std::vector<WorkerSpec> workers;  // pipeline order
  ClusterLimits limits;
  // How activations cross between neighbouring workers: "auto" (CUDA IPC between GPU workers
  // of one host, gRPC messages elsewhere) or "grpc" (always gRPC).
  std::string transport = "auto";
  // GPU workers compute a row the same way whatever else shares its step, so a sequence's
  // tokens do not depend on what it is batched with (CPU workers always do). Costs speed: see
  // engine/cuda/NOTES.md.
  bool batch_invariant = false;
  // In a cluster of one worker, the coordinator sends a decode step before the answer to the one
  // before it, which hides the host time between steps (coordinator/scheduler_core.h, "Decode
  // ahead"). No effect on a pipeline of several workers.
  bool decode_ahead = true;
  // recovery.resume_timeout: how long requests whose worker was lost wait for the cluster to
  // answer again and resume (re-prefilled from their ids); 0 fails them at once.
  double resume_timeout_s = 60;
  // tls: mutual TLS between the coordinator and every worker, all certificates from one CA
  // (empty: plaintext). cert/key are the coordinator's, and each worker's unless it has its own.
  TlsFiles tls;
  // tls.coordinator_name: the name (common name or DNS SAN) that the coordinator's certificate
  // carries; workers answer no other peer.
  std::string coordinator_name = "layerpipe-coordinator";
  // coordinator.api_tls: TLS on the public API, gRPC and HTTP; its `ca` (client_ca in the
  // file): clients must show a certificate from that CA. Empty cert: plaintext.
  TlsFiles api_tls;
  // coordinator.auth.tokens_file: bearer tokens, one per line, the API asks for one (reread on
  // SIGHUP); empty: no token asked.
  std::string tokens_file;
};

// The TLS files worker `i` serves with: its own cert and key, else the cluster's, and the
// cluster's CA (empty cert when the cluster has no tls).
TlsFiles WorkerTls(const ClusterConfig& config, size_t i);

// Reads and parses the file at `yaml_path`; errors start with the path and name the key and line.
absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& yaml_path);
// Parses cluster-file text; a relative model.path is resolved against `base_dir`.
absl::StatusOr<ClusterConfig> ParseClusterConfig(const std::string& yaml_text,
                                                 const std::string& base_dir);

// The host of a "host:port" address.
std::string HostOf(const std::string& address);
// Whether `address` is host:port with a port in 1..65535, the host possibly a bracketed IPv6
// address ("[::1]:7001"; "[::1]" alone is not).
bool IsHostPort(const std::string& address);
// Whether two "host:port" addresses name one listening socket: equal strings, or the same port
// on hosts that stand for a common address ("localhost:7411" and "127.0.0.1:7411",
// "[::1]:80" and "[0:0::1]:80"). No DNS lookup: other names compare as written.
bool SameEndpoint(const std::string& a, const std::string& b);

// The strategy names as written in the file ("auto", "balanced_low_0", ...; "explicit").
std::string StrategyName(DeviceMapStrategy s);

// How activations are meant to reach worker i from worker i - 1: "cuda-ipc" between GPU
// workers of one host when `transport` is auto, "grpc" otherwise, "token ids" for the first.
// (The coordinator falls back to gRPC where opening the IPC handles fails.)
std::string PlannedTransport(const ClusterConfig& config, size_t i);
// Whether the link into worker i (i >= 1) is planned as CUDA IPC.
bool PlannedCudaIpc(const ClusterConfig& config, size_t i);

// The index of the worker named `name`, or -1.
int FindWorker(const ClusterConfig& config, const std::string& name);

}  // namespace lp
