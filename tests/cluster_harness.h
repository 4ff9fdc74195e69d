// Real clusters on loopback for the tests: a cluster file in a temporary folder, worker and
// coordinator processes started from build/bin, stopped (killed) when the harness goes.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/health_client.h"
#include "fixture_util.h"

namespace lp::testing {

// A whole file (a log); empty when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Waits until the health of the server at `endpoint` is `want`; false on timeout.
inline bool WaitHealthAt(const std::string& endpoint, Health want, int timeout_ms,
                         std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (CheckHealth(endpoint, 500, "", credentials) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A child process with its output in `log`.
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = freopen(log.c_str(), "a", stderr);
      (void)f;
      dup2(STDERR_FILENO, STDOUT_FILENO);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Process() { Kill(SIGKILL); }
  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // Sends a signal and returns (SIGSTOP, SIGCONT); Kill waits for the process to end.
  void Signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
  }
  // Whether it still runs; once it has ended it is reaped and forgotten (its pid may be
  // another process's later: never signal it).
  bool running() {
    if (pid_ <= 0) return false;
    if (waitpid(pid_, nullptr, WNOHANG) == 0) return true;
    pid_ = -1;
    return false;
  }
  // Waits up to `timeout_ms` for the process to end; its exit code, or -1 (still running or
  // killed by a signal).
  int WaitExit(int timeout_ms) {
    for (int waited = 0; pid_ > 0 && waited <= timeout_ms; waited += 20) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

// Where the programs are: $LP_BIN_DIR (the GPU machine's bundle), else the build's bin folder.
inline std::string BinDir() {
  if (const char* d = std::getenv("LP_BIN_DIR"); d != nullptr && *d != '\0') return d;
  return std::filesystem::path(LP_LAYERPIPE_BIN).parent_path().string();
}

struct ClusterOptions {
  std::string limits_yaml = "{max_batch: 16, max_context: 256, max_step_tokens: 128}";
  // CPU workers (cpu:0, cpu:1, ...), or CUDA workers that all share GPU 0 (4 GiB each).
  bool cuda = false;
  std::string extra_yaml;                // more top-level keys ("batch_invariant: true\n")
  std::string coordinator_yaml;          // more keys under coordinator: ("  auth: {...}\n")
  std::vector<std::string> worker_yaml;  // more keys of worker i's map (", tls: {...}")
  // The channel's credentials when the harness and its tests ask the coordinator's health.
  std::shared_ptr<grpc::ChannelCredentials> health_credentials;
  bool http = false;            // the OpenAI-compatible HTTP API on a port of its own (http_url)
  bool worker_metrics = false;  // each worker serves /metrics (worker_metrics_url)
  std::vector<std::string> coordinator_args;  // more flags ("--log-format", "json")
};

class Cluster {
 public:
  // `workers` workers on `model` (a fixture name or a directory).
  Cluster(const std::string& model_dir, int workers, const ClusterOptions& options = {})
      : dir_(::testing::TempDir() + "/lp_cluster_" + std::to_string(getpid()) + "_" +
             std::to_string(counter_++)) {
    std::filesystem::create_directories(dir_);
    coordinator_port_ = FreePort();
    std::ofstream yaml(cluster_file());
    yaml << "model:\n  path: " << model_dir << "\ndevice_map: balanced\n"
         << "coordinator:\n  listen: \"127.0.0.1:" << coordinator_port_ << "\"\n";
    if (options.http) {
      http_port_ = FreePort();
      yaml << "  http_listen: \"127.0.0.1:" << http_port_ << "\"\n";
    }
    yaml << options.coordinator_yaml << options.extra_yaml;
    if (options.cuda) {
      yaml << "max_memory: {";
      for (int i = 0; i < workers; ++i) yaml << (i ? ", " : "") << "w" << i << ": 4GiB";
      yaml << "}\n";
    }
    yaml << "workers:\n";
    for (int i = 0; i < workers; ++i) {
      const int port = FreePort();
      const std::string device = options.cuda ? "cuda:0" : "cpu:" + std::to_string(i);
      yaml << "  - {name: w" << i << ", device: \"" << device << "\", address: \"127.0.0.1:" << port
           << "\"" << (size_t(i) < options.worker_yaml.size() ? options.worker_yaml[size_t(i)] : "")
           << "}\n";
      names_.push_back("w" + std::to_string(i));
      worker_ports_.push_back(port);
    }
    yaml << "limits: " << options.limits_yaml << "\n";
    yaml.close();
    if (options.worker_metrics) {
      for (size_t i = 0; i < names_.size(); ++i) metrics_ports_.push_back(FreePort());
    }
    for (size_t i = 0; i < names_.size(); ++i) StartWorker(int(i));
    coordinator_args_ = options.coordinator_args;
    health_credentials_ = options.health_credentials;
    StartCoordinator();
  }

  void StartCoordinator() {
    std::vector<std::string> args{Bin("layerpipe-coordinator"), cluster_file()};
    args.insert(args.end(), coordinator_args_.begin(), coordinator_args_.end());
    coordinator_ = std::make_unique<Process>(args, dir_ + "/coordinator.log");
  }
  void KillCoordinator() { coordinator_->Kill(SIGKILL); }
  void SignalCoordinator(int sig) { coordinator_->Signal(sig); }
  // The coordinator's exit code once it ends (-1: still running after `timeout_ms`, or killed).
  int WaitCoordinatorExit(int timeout_ms) { return coordinator_->WaitExit(timeout_ms); }

  static std::string Bin(const std::string& name) {
    return (std::filesystem::path(BinDir()) / name).string();
  }
  std::string cluster_file() const { return dir_ + "/cluster.yaml"; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(coordinator_port_); }
  std::string http_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  std::string worker_metrics_url(int i) const {
    return "http://127.0.0.1:" + std::to_string(metrics_ports_[size_t(i)]) + "/metrics";
  }
  std::string worker_endpoint(int i) const {
    return "127.0.0.1:" + std::to_string(worker_ports_[size_t(i)]);
  }
  std::string log(const std::string& name) const { return ReadFile(dir_ + "/" + name + ".log"); }

  void StartWorker(int i) {
    workers_.resize(names_.size());
    std::vector<std::string> args{Bin("layerpipe-worker"), cluster_file(), "--name",
                                  names_[size_t(i)],       "--threads",    "1"};
    if (!metrics_ports_.empty()) {
      args.push_back("--metrics-listen");
      args.push_back("127.0.0.1:" + std::to_string(metrics_ports_[size_t(i)]));
    }
    workers_[size_t(i)] = std::make_unique<Process>(args, dir_ + "/" + names_[size_t(i)] + ".log");
  }
  size_t worker_count() const { return workers_.size(); }
  void KillWorker(int i) { workers_[size_t(i)]->Kill(SIGKILL); }
  void SignalWorker(int i, int sig) { workers_[size_t(i)]->Signal(sig); }
  // Worker i's exit code once it ends (-1: still running after `timeout_ms`, or killed).
  int WaitWorkerExit(int i, int timeout_ms) { return workers_[size_t(i)]->WaitExit(timeout_ms); }

  // Waits until the coordinator's health is `want`; false on timeout.
  bool WaitHealth(Health want, int timeout_ms) const {
    return WaitHealthAt(endpoint(), want, timeout_ms, health_credentials_);
  }

 private:
  static inline int counter_ = 0;
  std::string dir_;
  int coordinator_port_ = 0;
  int http_port_ = 0;
  std::vector<int> metrics_ports_;
  std::vector<std::string> coordinator_args_;
  std::shared_ptr<grpc::ChannelCredentials> health_credentials_;
  std::vector<std::string> names_;
  std::vector<int> worker_ports_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::unique_ptr<Process> coordinator_;
};

}  // namespace lp::testing
