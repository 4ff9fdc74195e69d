// `layerpipe serve CLUSTER.yaml`: the one-command mode, a small supervisor. Starts the workers
// declared on this host and the coordinator as child processes, their output on its own with
// the process's name in front, waits until the coordinator is SERVING (every worker loaded and
// agreeing with the plan) and prints the endpoint.
//  - A child that exits while the cluster starts fails `serve` at once (exit 1), naming it and
//    showing its last lines; so does a cluster not ready within --ready-timeout.
//  - Once serving, a child that dies is started again after a backoff (1 s, doubling to 30 s;
//    back to 1 s after a minute up). One that dies --max-restarts times in a row, each time
//    within a minute, makes `serve` give up: it stops the others and exits 1.
//  - SIGINT / SIGTERM stop every child (SIGTERM, then SIGKILL after 10 s) and exit 0.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/health_client.h"
#include "common/planned_cluster.h"
#include "common/server.h"
#include "common/tls.h"

namespace lp::cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kTailLines = 15;
constexpr auto kStableAfter = std::chrono::seconds(60);

// One supervised process: how to start it, its pid, the last lines it wrote.
struct Child {
  std::string name;  // "worker gpu0", "coordinator"
  std::vector<std::string> args;
  pid_t pid = -1;
  int last_status = 0;
  Clock::time_point started, restart_at;
  int quick_failures = 0;  // deaths in a row, each within kStableAfter of its start
  std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
  std::shared_ptr<std::deque<std::string>> tail = std::make_shared<std::deque<std::string>>();
};

std::string Describe(int status) {
  return WIFEXITED(status) ? absl::StrCat("exit code ", WEXITSTATUS(status))
                           : absl::StrCat("signal ", WTERMSIG(status));
}

// Starts `c` with its output in a pipe that a thread copies to our stderr, line by line, with
// the child's name in front, keeping the last kTailLines.
void Start(Child& c) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) Fail(absl::InternalError("serve: pipe failed"));
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : c.args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    std::fprintf(stderr, "error: cannot run %s\n", argv[0]);
    _exit(127);
  }
  close(fds[1]);
  c.pid = pid;
  c.started = Clock::now();
  std::thread([fd = fds[0], name = c.name, mu = c.mu, tail = c.tail] {
    FILE* in = fdopen(fd, "r");
    char* line = nullptr;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, in)) > 0) {
      std::string text(line, size_t(n));
      if (!text.empty() && text.back() == '\n') text.pop_back();
      std::fprintf(stderr, "[%s] %s\n", name.c_str(), text.c_str());
      std::lock_guard<std::mutex> lock(*mu);
      tail->push_back(text);
      if (tail->size() > kTailLines) tail->pop_front();
    }
    free(line);
    fclose(in);
  }).detach();
}

std::string LastLines(const Child& c) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let its reader catch up
  std::lock_guard<std::mutex> lock(*c.mu);
  if (c.tail->empty()) return "  (no output)";
  return "  " + absl::StrJoin(*c.tail, "\n  ");
}

void StopAll(std::vector<Child>& children) {
  for (auto& c : children) {
    if (c.pid > 0) kill(c.pid, SIGTERM);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (auto& c : children) {
    while (c.pid > 0) {
      if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
        c.pid = -1;
      } else if (Clock::now() > deadline) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, nullptr, 0);
        c.pid = -1;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
}

// Reaps children that exited; returns the ones that did (pid -1, status kept).
std::vector<Child*> Reap(std::vector<Child>& children) {
  std::vector<Child*> exited;
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (auto& c : children) {
      if (c.pid != pid) continue;
      c.pid = -1;
      c.last_status = status;
      exited.push_back(&c);
    }
  }
  return exited;
}

[[noreturn]] void GiveUp(std::vector<Child>& children, const Child& culprit,
                         const std::string& why) {
  const std::string lines = LastLines(culprit);
  StopAll(children);
  Fail(absl::UnavailableError(absl::StrCat("serve: ", culprit.name, " ", why, " (",
                                           Describe(culprit.last_status), "); its last lines:\n",
                                           lines)));
}

void RunServe(const std::string& cluster_path, double ready_timeout_s, int max_restarts) {
  auto planned = LoadAndPlan(cluster_path);
  if (!planned.ok()) Fail(planned.status());
  CatchStopSignals();
  std::vector<Child> children;
  for (const auto& w : planned->cluster.workers) {
    if (!IsLocalAddress(w.address)) {
      std::fprintf(stderr, "serve: worker %s at %s is on another host: start it there\n",
                   w.name.c_str(), w.address.c_str());
      continue;
    }
    children.push_back(
        {"worker " + w.name, {SiblingBinary("layerpipe-worker"), cluster_path, "--name", w.name}});
  }
  children.push_back({"coordinator", {SiblingBinary("layerpipe-coordinator"), cluster_path}});
  for (Child& c : children) Start(c);

  std::string endpoint = planned->cluster.coordinator_listen;
  if (endpoint.rfind("0.0.0.0:", 0) == 0) endpoint = "127.0.0.1:" + endpoint.substr(8);
  // The coordinator's health, asked over its API: with api_tls as the cluster's own member
  // (its CA and the coordinator's certificate; the system's roots without tls).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (const ClusterConfig& c = planned->cluster; !c.api_tls.cert.empty()) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> tls = grpc::SslCredentials({});
    if (!c.tls.cert.empty()) tls = ChannelCredentials(c.tls, "tls");
    if (!tls.ok()) Fail(tls.status());
    credentials = *tls;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(int64_t(ready_timeout_s * 1000));
  while (CheckHealth(endpoint, 500, "", credentials) != Health::kServing) {
    for (Child* c : Reap(children)) GiveUp(children, *c, "exited while the cluster started");
    if (StopRequested()) {
      StopAll(children);
      Fail(absl::CancelledError("interrupted"));
    }
    if (Clock::now() > deadline) {
      StopAll(children);
      Fail(absl::DeadlineExceededError(absl::StrCat(
          "the cluster was not ready within --ready-timeout ", ready_timeout_s, " s")));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::printf("layerpipe: serving on %s (grpc layerpipe.v1.Inference); Ctrl-C stops\n",
              endpoint.c_str());
  if (const std::string& http = planned->cluster.http_listen; !http.empty()) {
    const char* scheme = planned->cluster.api_tls.cert.empty() ? "http" : "https";
    std::printf(
        "layerpipe: OpenAI-compatible HTTP API on %s://%s/v1 (model \"%s\"), e.g.\n"
        "  curl -sN %s://%s/v1/chat/completions -H 'Content-Type: application/json' "
        "-d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
        "\"max_tokens\":32,\"stream\":true}'\n",
        scheme, http.c_str(), planned->cluster.model_name.c_str(), scheme, http.c_str());
  }
  std::fflush(stdout);
  while (!StopRequested()) {
    const auto now = Clock::now();
    for (Child* c : Reap(children)) {
      c->quick_failures = now - c->started < kStableAfter ? c->quick_failures + 1 : 1;
      if (c->quick_failures > max_restarts) {
        GiveUp(children, *c,
               absl::StrCat("died ", c->quick_failures, " times in a row, each within a minute"));
      }
      const auto backoff = std::min(std::chrono::seconds(30),
                                    std::chrono::seconds(1 << std::min(c->quick_failures - 1, 5)));
      c->restart_at = now + backoff;
      std::fprintf(stderr, "serve: %s died (%s); starting it again in %lld s\n", c->name.c_str(),
                   Describe(c->last_status).c_str(), (long long)backoff.count());
    }
    for (Child& c : children) {
      if (c.pid < 0 && Clock::now() >= c.restart_at) Start(c);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "serve: stopping\n");
  StopAll(children);
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve",
      "start the coordinator and this host's workers of a cluster file, restart any "
      "that dies; Ctrl-C stops");
  auto path = std::make_shared<std::string>();
  auto timeout = std::make_shared<double>(600);
  auto restarts = std::make_shared<int>(5);
  cmd->add_option("CLUSTER", *path, "cluster file (YAML)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--ready-timeout", *timeout, "seconds to wait for every worker to load")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6));
  cmd->add_option("--max-restarts", *restarts,
                  "give up (exit 1) when a process dies this many times in a row, each within a "
                  "minute of its start")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  cmd->callback([path, timeout, restarts] { RunServe(*path, *timeout, *restarts); });
}

}  // namespace lp::cli
