// Parsing the cluster file with yaml-cpp. Every error names the key and the line it is on; keys
// we do not know are refused (a misspelt `max_memroy` must not be silently ignored).
#include "common/cluster_config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/byte_size.h"
#include "common/device.h"
#include "common/status.h"
#include "yaml-cpp/yaml.h"

namespace lp {
namespace {

int FindWorkerIn(const std::vector<WorkerSpec>& workers, const std::string& name) {
  for (size_t i = 0; i < workers.size(); ++i) {
    if (workers[i].name == name) return int(i);
  }
  return -1;
}

int LineOf(const YAML::Node& n) { return n.Mark().line + 1; }

absl::Status Error(const YAML::Node& n, const std::string& key, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", LineOf(n), ", ", key, ": ", message));
}

// Refuses keys of `map` outside `known`.
absl::Status CheckKeys(const YAML::Node& map, const std::string& where,
                       const std::vector<std::string>& known) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return Error(it->first, where.empty() ? key : absl::StrCat(where, ".", key),
                   absl::StrCat("unknown key (known here: ", absl::StrJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ScalarString(const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar() || n.Scalar().empty()) return Error(n, key, "must be a non-empty string");
  return n.Scalar();
}

absl::StatusOr<int64_t> PositiveInt(const YAML::Node& n, const std::string& key) {
  const std::string s = n.IsScalar() ? n.Scalar() : "";
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v <= 0) {
    return Error(n, key, absl::StrCat("'", s, "' is not a positive integer"));
  }
  return v;
}

absl::Status CheckAddress(const YAML::Node& n, const std::string& key, const std::string& a) {
  if (!IsHostPort(a)) {
    return Error(n, key, absl::StrCat("'", a, "' is not host:port (e.g. 10.0.0.5:7001)"));
  }
  return absl::OkStatus();
}

std::string ResolvePath(const std::string& path, const std::string& base_dir) {
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
  return p.lexically_normal().string();
}

absl::StatusOr<std::string> ParseModel(const YAML::Node& root, const std::string& base_dir) {
  const YAML::Node model = root["model"];
  if (!model) return absl::InvalidArgumentError("model: missing (model: {path: DIR})");
  if (!model.IsMap()) return Error(model, "model", "must be a map with key 'path'");
  RETURN_IF_ERROR(CheckKeys(model, "model", {"path", "name"}));
  if (!model["path"]) return Error(model, "model.path", "missing (the checkpoint directory)");
  ASSIGN_OR_RETURN(std::string path, ScalarString(model["path"], "model.path"));
  return ResolvePath(path, base_dir);
}

// The map of PEM files at `key`: cert and key, both required, and the CA under `ca_key` ("":
// none), paths resolved against base_dir. `other`: the map's other keys, which the caller reads.
absl::StatusOr<TlsFiles> ParseTlsFiles(const YAML::Node& n, const std::string& key,
                                       const std::string& base_dir, const std::string& ca_key,
                                       std::vector<std::string> other) {
  std::vector<std::string> known = {"cert", "key"};
  if (!ca_key.empty()) known.push_back(ca_key);
  known.insert(known.end(), other.begin(), other.end());
  if (!n.IsMap())
    return Error(n, key, absl::StrCat("must be a map {", absl::StrJoin(known, ", "), "}"));
  RETURN_IF_ERROR(CheckKeys(n, key, known));
  TlsFiles files;
  for (auto [field, out] : {std::pair<std::string, std::string*>{"cert", &files.cert},
                            {"key", &files.key},
                            {ca_key, &files.ca}}) {
    if (field.empty() || !n[field]) continue;
    ASSIGN_OR_RETURN(std::string path, ScalarString(n[field], absl::StrCat(key, ".", field)));
    *out = ResolvePath(path, base_dir);
  }
  if (files.cert.empty() || files.key.empty()) {
    return Error(n, key, "needs both cert and key (PEM files)");
  }
  return files;
}

// tls, workers[i].tls, coordinator.api_tls and coordinator.auth (after the workers are parsed).
absl::Status ParseSecurity(const YAML::Node& root, ClusterConfig& c) {
  if (const YAML::Node t = root["tls"]) {
    ASSIGN_OR_RETURN(c.tls, ParseTlsFiles(t, "tls", c.base_dir, "ca", {"coordinator_name"}));
    if (c.tls.ca.empty()) {
      return Error(t, "tls.ca",
                   "missing (the CA every worker's and the coordinator's "
                   "certificate must come from)");
    }
    if (t["coordinator_name"]) {
      ASSIGN_OR_RETURN(c.coordinator_name,
                       ScalarString(t["coordinator_name"], "tls.coordinator_name"));
    }
  }
  for (size_t i = 0; i < c.workers.size(); ++i) {
    const YAML::Node t = root["workers"][i]["tls"];
    if (!t) continue;
    const std::string key = absl::StrCat("workers[", i, "].tls");
    if (c.tls.cert.empty()) {
      return Error(t, key, "needs the cluster's tls (its CA) as well");
    }
    ASSIGN_OR_RETURN(c.workers[i].tls, ParseTlsFiles(t, key, c.base_dir, "", {}));
  }
  const YAML::Node co = root["coordinator"];
  if (!co) return absl::OkStatus();
  if (const YAML::Node t = co["api_tls"]) {
    ASSIGN_OR_RETURN(c.api_tls,
                     ParseTlsFiles(t, "coordinator.api_tls", c.base_dir, "client_ca", {}));
  }
  if (const YAML::Node a = co["auth"]) {
    if (!a.IsMap()) return Error(a, "coordinator.auth", "must be a map {tokens_file: PATH}");
    RETURN_IF_ERROR(CheckKeys(a, "coordinator.auth", {"tokens_file"}));
    if (!a["tokens_file"]) return Error(a, "coordinator.auth.tokens_file", "missing");
    ASSIGN_OR_RETURN(std::string path,
                     ScalarString(a["tokens_file"], "coordinator.auth.tokens_file"));
    c.tokens_file = ResolvePath(path, c.base_dir);
  }
  return absl::OkStatus();
}

absl::StatusOr<WorkerSpec> ParseWorker(const YAML::Node& w, const std::string& key) {
  if (!w.IsMap()) return Error(w, key, "must be a map {name, device, address}");
  RETURN_IF_ERROR(CheckKeys(w, key, {"name", "device", "address", "tls"}));
  WorkerSpec spec;
  for (auto [field, out] :
       {std::pair{"name", &spec.name}, {"device", &spec.device}, {"address", &spec.address}}) {
    if (!w[field]) return Error(w, absl::StrCat(key, ".", field), "missing");
    ASSIGN_OR_RETURN(*out, ScalarString(w[field], absl::StrCat(key, ".", field)));
  }
  for (char ch : spec.name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.') {
      return Error(w["name"], key + ".name",
                   absl::StrCat("'", spec.name, "': use letters, digits, '_', '-', '.'"));
    }
  }
  auto device = Device::Parse(spec.device);
  if (!device.ok())
    return Error(w["device"], key + ".device", std::string(device.status().message()));
  spec.device = device->ToString();
  RETURN_IF_ERROR(CheckAddress(w["address"], key + ".address", spec.address));
  return spec;
}

absl::StatusOr<std::vector<WorkerSpec>> ParseWorkers(const YAML::Node& root) {
  const YAML::Node list = root["workers"];
  if (!list) return absl::InvalidArgumentError("workers: missing (one per device, in order)");
  if (!list.IsSequence() || list.size() == 0) {
    return Error(list, "workers", "must be a non-empty list, one worker per device");
  }
  std::vector<WorkerSpec> workers;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string key = absl::StrCat("workers[", i, "]");
    ASSIGN_OR_RETURN(WorkerSpec w, ParseWorker(list[i], key));
    for (const WorkerSpec& other : workers) {
      if (other.name == w.name) return Error(list[i]["name"], key + ".name", "used twice");
      if (SameEndpoint(other.address, w.address)) {
        return Error(list[i]["address"], key + ".address",
                     absl::StrCat("'", w.address, "' is also worker ", other.name, "'s"));
      }
      // Several workers on one device (pipelining tests on one GPU) must each be given their
      // share of it by name in max_memory; CheckSharedDevices says so once that is parsed.
    }
    workers.push_back(std::move(w));
  }
  return workers;
}

absl::StatusOr<ClusterLimits> ParseLimits(const YAML::Node& root) {
  ClusterLimits limits;
  const YAML::Node n = root["limits"];
  if (!n) return limits;
  if (!n.IsMap())
    return Error(n, "limits",
                 "must be a map {max_batch, max_context, max_step_tokens, kv_block_tokens, "
                 "kv_blocks}");
  RETURN_IF_ERROR(
      CheckKeys(n, "limits",
                {"max_batch", "max_context", "max_step_tokens", "kv_block_tokens", "kv_blocks"}));
  for (auto [key, out] : {std::pair{"max_batch", &limits.max_batch},
                          {"max_context", &limits.max_context},
                          {"max_step_tokens", &limits.max_step_tokens},
                          {"kv_block_tokens", &limits.kv_block_tokens},
                          {"kv_blocks", &limits.kv_blocks}}) {
    if (n[key]) {
      ASSIGN_OR_RETURN(*out, PositiveInt(n[key], absl::StrCat("limits.", key)));
    }
  }
  if (limits.max_batch > kMaxBatch) {
    return Error(n["max_batch"], "limits.max_batch",
                 absl::StrCat(limits.max_batch, " is more than the ", kMaxBatch,
                              " sequences a step may carry"));
  }
  if (limits.max_step_tokens < limits.max_batch) {
    return Error(n, "limits.max_step_tokens",
                 absl::StrCat(limits.max_step_tokens, " is less than max_batch ", limits.max_batch,
                              ": a decode step carries one token of every sequence"));
  }
  if (!ValidKvBlockTokens(limits.kv_block_tokens)) {
    return Error(n["kv_block_tokens"], "limits.kv_block_tokens",
                 absl::StrCat(limits.kv_block_tokens, " is not a power of two from 16 to 256"));
  }
  const int64_t per_seq = KvBlocksFor(limits.max_context, limits.kv_block_tokens);
  if (limits.kv_blocks > (int64_t(1) << 30)) {
    return Error(n["kv_blocks"], "limits.kv_blocks",
                 absl::StrCat(limits.kv_blocks, " is more than 2^30 blocks"));
  }
  if (limits.kv_blocks > 0 && limits.kv_blocks < per_seq) {
    return Error(n["kv_blocks"], "limits.kv_blocks",
                 absl::StrCat(limits.kv_blocks, " blocks of ", limits.kv_block_tokens,
                              " tokens cannot hold one sequence of max_context ",
                              limits.max_context, " (", per_seq, " blocks)"));
  }
  return limits;
}

// recovery: {resume_timeout: SECONDS}; the default when absent.
absl::StatusOr<double> ParseResumeTimeout(const YAML::Node& root) {
  const YAML::Node r = root["recovery"];
  if (!r) return ClusterConfig{}.resume_timeout_s;
  if (!r.IsMap()) return Error(r, "recovery", "must be a map {resume_timeout: seconds}");
  RETURN_IF_ERROR(CheckKeys(r, "recovery", {"resume_timeout"}));
  const YAML::Node t = r["resume_timeout"];
  if (!t) return ClusterConfig{}.resume_timeout_s;
  std::string text;
  ASSIGN_OR_RETURN(text, ScalarString(t, "recovery.resume_timeout"));
  double seconds = -1;
  if (!absl::SimpleAtod(text, &seconds) || !(seconds >= 0) || seconds > 86400) {
    return Error(t, "recovery.resume_timeout",
                 "must be seconds from 0 (no resuming) to 86400, e.g. 60");
  }
  return seconds;
}

// A device_map value or max_memory key: a worker name, else a device held by exactly one worker
// (`allow_shared`: by any number, for max_memory). Returns the normalized target.
absl::StatusOr<std::string> ResolveTarget(const YAML::Node& n, const std::string& key,
                                          const std::vector<WorkerSpec>& workers, bool allow_shared,
                                          int* worker) {
  const std::string text = n.IsScalar() ? n.Scalar() : "";
  for (size_t i = 0; i < workers.size(); ++i) {
    if (workers[i].name == text) {
      *worker = int(i);
      return text;
    }
  }
  auto parsed = Device::Parse(text);
  if (!parsed.ok()) {
    return Error(n, key, absl::StrCat(parsed.status().message(), ", nor a worker name"));
  }
  const std::string device = parsed->ToString();
  std::vector<std::string> holders;
  for (size_t i = 0; i < workers.size(); ++i) {
    if (workers[i].device != device) continue;
    holders.push_back(absl::StrCat(workers[i].name, " at ", workers[i].address));
    *worker = int(i);
  }
  if (holders.empty()) {
    std::vector<std::string> have;
    for (const auto& w : workers) have.push_back(absl::StrCat(w.name, " ", w.device));
    return Error(n, key,
                 absl::StrCat("no worker has device ", device,
                              " (workers: ", absl::StrJoin(have, ", "), ")"));
  }
  if (holders.size() > 1 && !allow_shared) {
    return Error(n, key,
                 absl::StrCat(device, " is the device of several workers (",
                              absl::StrJoin(holders, ", "), "): name the worker instead"));
  }
  return device;
}

// Workers that share a device of one host split it: each needs its own max_memory entry by
// worker name, or their budgets would each claim the whole device.
absl::Status CheckSharedDevices(const YAML::Node& root, const ClusterConfig& c) {
  for (size_t i = 0; i < c.workers.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const WorkerSpec &a = c.workers[j], &b = c.workers[i];
      if (a.device != b.device || HostOf(a.address) != HostOf(b.address)) continue;
      if (c.max_memory.count(a.name) && c.max_memory.count(b.name)) continue;
      return Error(
          root["workers"][i]["device"], absl::StrCat("workers[", i, "].device"),
          absl::StrCat(b.device, " of host ", HostOf(b.address), " is also worker ", a.name,
                       "'s: workers sharing a device need max_memory entries by "
                       "worker name ('",
                       a.name, "', '", b.name, "')"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, uint64_t>> ParseMaxMemory(
    const YAML::Node& root, const std::vector<WorkerSpec>& workers) {
  std::map<std::string, uint64_t> budgets;
  const YAML::Node n = root["max_memory"];
  if (!n || n.IsNull()) return budgets;
  if (!n.IsMap()) return Error(n, "max_memory", "must be a map {device or worker: size}");
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string key = absl::StrCat("max_memory[", it->first.Scalar(), "]");
    int worker = -1;
    ASSIGN_OR_RETURN(std::string target,
                     ResolveTarget(it->first, key, workers, /*allow_shared=*/true, &worker));
    auto bytes = ParseByteSize(it->second.IsScalar() ? it->second.Scalar() : "");
    if (!bytes.ok()) return Error(it->second, key, std::string(bytes.status().message()));
    if (budgets.count(target)) return Error(it->first, key, "given twice");
    budgets[target] = *bytes;
  }
  return budgets;
}

absl::StatusOr<DeviceMap> ParseDeviceMap(const YAML::Node& root,
                                         const std::vector<WorkerSpec>& workers) {
  DeviceMap map;
  const YAML::Node n = root["device_map"];
  if (!n || n.IsNull()) return map;  // auto
  map.line = LineOf(n);
  if (n.IsScalar()) {
    const std::string s = n.Scalar();
    for (auto st :
         {DeviceMapStrategy::kAuto, DeviceMapStrategy::kBalanced, DeviceMapStrategy::kBalancedLow0,
          DeviceMapStrategy::kSequential, DeviceMapStrategy::kLayered}) {
      if (s == StrategyName(st)) {
        map.strategy = st;
        return map;
      }
    }
    if (!Device::Parse(s).ok() && FindWorkerIn(workers, s) < 0) {
      return Error(n, "device_map",
                   absl::StrCat("unknown strategy '", s,
                                "' (known: auto, balanced, balanced_low_0, sequential, layered; "
                                "or one device such as \"cuda:1\", or a map of modules)"));
    }
    map.strategy = DeviceMapStrategy::kExplicit;
    DeviceMapEntry e{"", "", -1, LineOf(n)};
    ASSIGN_OR_RETURN(e.target, ResolveTarget(n, "device_map", workers, false, &e.worker));
    map.entries.push_back(e);
    return map;
  }
  if (!n.IsMap() || n.size() == 0) {
    return Error(n, "device_map", "must be a strategy name, a device, or a map {module: device}");
  }
  map.strategy = DeviceMapStrategy::kExplicit;
  for (auto it = n.begin(); it != n.end(); ++it) {
    DeviceMapEntry e{it->first.Scalar(), "", -1, LineOf(it->first)};
    const std::string key = absl::StrCat("device_map[\"", e.module, "\"]");
    ASSIGN_OR_RETURN(e.target, ResolveTarget(it->second, key, workers, false, &e.worker));
    map.entries.push_back(e);
  }
  return map;
}

// An optional true/false key of the root: `fallback` when absent.
absl::StatusOr<bool> ParseFlag(const YAML::Node& root, const char* key, bool fallback,
                               const char* what) {
  const YAML::Node n = root[key];
  if (!n) return fallback;
  std::string v;
  ASSIGN_OR_RETURN(v, ScalarString(n, key));
  if (v != "true" && v != "false") return Error(n, key, absl::StrCat("must be ", what));
  return v == "true";
}

absl::StatusOr<ClusterConfig> ParseRoot(const YAML::Node& root, const std::string& base_dir) {
  if (!root.IsMap()) return absl::InvalidArgumentError("the cluster file must be a YAML map");
  RETURN_IF_ERROR(
      CheckKeys(root, "",
                {"model", "device_map", "max_memory", "coordinator", "workers", "limits",
                 "transport", "batch_invariant", "decode_ahead", "recovery", "tls"}));
  ClusterConfig c;
  ASSIGN_OR_RETURN(c.model_path, ParseModel(root, base_dir));
  c.model_path_written = root["model"]["path"].as<std::string>();
  if (const YAML::Node name = root["model"]["name"]) {
    ASSIGN_OR_RETURN(c.model_name, ScalarString(name, "model.name"));
    if (c.model_name.empty()) return Error(name, "model.name", "must not be empty");
  } else {
    c.model_name = std::filesystem::path(c.model_path).filename().string();
  }
  c.base_dir = base_dir;
  ASSIGN_OR_RETURN(c.workers, ParseWorkers(root));
  ASSIGN_OR_RETURN(c.limits, ParseLimits(root));
  ASSIGN_OR_RETURN(c.max_memory, ParseMaxMemory(root, c.workers));
  RETURN_IF_ERROR(CheckSharedDevices(root, c));
  ASSIGN_OR_RETURN(c.device_map, ParseDeviceMap(root, c.workers));
  if (const YAML::Node t = root["transport"]) {
    ASSIGN_OR_RETURN(c.transport, ScalarString(t, "transport"));
    if (c.transport != "auto" && c.transport != "grpc") {
      return Error(t, "transport",
                   "must be auto (CUDA IPC between GPU workers of one host, "
                   "gRPC elsewhere) or grpc (gRPC everywhere)");
    }
  }
  ASSIGN_OR_RETURN(c.batch_invariant,
                   ParseFlag(root, "batch_invariant", c.batch_invariant,
                             "true (a sequence's tokens do not depend on what shares its steps) "
                             "or false"));
  ASSIGN_OR_RETURN(c.decode_ahead,
                   ParseFlag(root, "decode_ahead", c.decode_ahead,
                             "true (a cluster of one worker gets the next decode step before it "
                             "answers the last) or false (one step at a time)"));
  ASSIGN_OR_RETURN(c.resume_timeout_s, ParseResumeTimeout(root));
  c.coordinator_listen = "127.0.0.1:7000";
  if (const YAML::Node co = root["coordinator"]) {
    if (!co.IsMap()) return Error(co, "coordinator", "must be a map {listen: host:port}");
    RETURN_IF_ERROR(CheckKeys(co, "coordinator", {"listen", "http_listen", "api_tls", "auth"}));
    if (co["listen"]) {
      ASSIGN_OR_RETURN(c.coordinator_listen, ScalarString(co["listen"], "coordinator.listen"));
      RETURN_IF_ERROR(CheckAddress(co["listen"], "coordinator.listen", c.coordinator_listen));
    }
    if (co["http_listen"]) {
      ASSIGN_OR_RETURN(c.http_listen, ScalarString(co["http_listen"], "coordinator.http_listen"));
      RETURN_IF_ERROR(CheckAddress(co["http_listen"], "coordinator.http_listen", c.http_listen));
      if (SameEndpoint(c.http_listen, c.coordinator_listen)) {
        return Error(co["http_listen"], "coordinator.http_listen",
                     "is coordinator.listen's address: the HTTP API needs a port of its own");
      }
    }
  }
  RETURN_IF_ERROR(ParseSecurity(root, c));
  for (size_t i = 0; i < c.workers.size(); ++i) {
    const WorkerSpec& w = c.workers[i];
    if (SameEndpoint(w.address, c.coordinator_listen)) {
      const YAML::Node co = root["coordinator"];
      return Error(co && co["listen"] ? co["listen"] : root["workers"][i]["address"],
                   "coordinator.listen",
                   absl::StrCat("'", c.coordinator_listen, "' is also worker ", w.name,
                                "'s address (", w.address, ")"));
    }
    if (!c.http_listen.empty() && SameEndpoint(w.address, c.http_listen)) {
      return Error(root["coordinator"]["http_listen"], "coordinator.http_listen",
                   absl::StrCat("'", c.http_listen, "' is also worker ", w.name, "'s address (",
                                w.address, ")"));
    }
  }
  return c;
}

}  // namespace

std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

bool IsHostPort(const std::string& a) {
  const size_t colon = a.rfind(':');
  int port = 0;
  const std::string p = colon == std::string::npos ? "" : a.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  return colon != 0 && colon != std::string::npos && ec == std::errc() &&
         end == p.data() + p.size() && port > 0 && port <= 65535;
}

namespace {

// The addresses a host stands for, without a DNS lookup (a cluster file is read by every
// process, also where the other hosts' names do not resolve yet): a numeric address in its
// canonical spelling, "localhost" as both loopback addresses, any other name as itself.
std::set<std::string> Addresses(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost") return {"127.0.0.1", "::1"};
  unsigned char raw[sizeof(in6_addr)];
  char text[INET6_ADDRSTRLEN] = {};
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, host.c_str(), raw) == 1 && inet_ntop(family, raw, text, sizeof text)) {
      return {text};
    }
  }
  return {host};
}

}  // namespace

bool SameEndpoint(const std::string& a, const std::string& b) {
  if (a == b) return true;
  if (a.substr(a.rfind(':')) != b.substr(b.rfind(':'))) return false;  // other ports
  const std::set<std::string> x = Addresses(HostOf(a)), y = Addresses(HostOf(b));
  return std::any_of(x.begin(), x.end(), [&](const std::string& s) { return y.count(s) > 0; });
}

TlsFiles WorkerTls(const ClusterConfig& config, size_t i) {
  TlsFiles files = config.tls;
  if (const TlsFiles& own = config.workers[i].tls; !own.cert.empty()) {
    files.cert = own.cert;
    files.key = own.key;
  }
  return files;
}

int FindWorker(const ClusterConfig& config, const std::string& name) {
  return FindWorkerIn(config.workers, name);
}

std::string StrategyName(DeviceMapStrategy s) {
  switch (s) {
    case DeviceMapStrategy::kExplicit:
      return "explicit";
    case DeviceMapStrategy::kAuto:
      return "auto";
    case DeviceMapStrategy::kBalanced:
      return "balanced";
    case DeviceMapStrategy::kBalancedLow0:
      return "balanced_low_0";
    case DeviceMapStrategy::kSequential:
      return "sequential";
    case DeviceMapStrategy::kLayered:
      return "layered";
  }
  return "?";
}

absl::StatusOr<ClusterConfig> ParseClusterConfig(const std::string& yaml_text,
                                                 const std::string& base_dir) {
  try {
    return ParseRoot(YAML::Load(yaml_text), base_dir);
  } catch (const YAML::Exception& e) {  // syntax errors, and anything else yaml-cpp throws
    const std::string where = e.mark.is_null() ? "" : absl::StrCat("line ", e.mark.line + 1, ": ");
    return absl::InvalidArgumentError(absl::StrCat(where, e.msg.empty() ? e.what() : e.msg));
  }
}

absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& yaml_path) {
  std::ifstream in(yaml_path);
  if (!in) return absl::NotFoundError(absl::StrCat(yaml_path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  // Absolute, so that the resolved model path means the same to every process.
  const std::string base_dir =
      std::filesystem::absolute(yaml_path).parent_path().lexically_normal().string();
  auto config = ParseClusterConfig(ss.str(), base_dir);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(yaml_path, ": ", config.status().message()));
  }
  return config;
}

bool PlannedCudaIpc(const ClusterConfig& config, size_t i) {
  if (i == 0) return false;
  const WorkerSpec& a = config.workers[i - 1];
  const WorkerSpec& b = config.workers[i];
  return config.transport == "auto" && IsCudaDevice(a.device) && IsCudaDevice(b.device) &&
         HostOf(a.address) == HostOf(b.address);
}

std::string PlannedTransport(const ClusterConfig& config, size_t i) {
  if (i == 0) return "token ids";
  return PlannedCudaIpc(config, i) ? "cuda-ipc" : "grpc";
}

}  // namespace lp
