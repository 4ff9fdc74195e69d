// `layerpipe serve CLUSTER.yaml`: the one-command mode. Starts the workers declared on this
// host and the coordinator as child processes, waits until the coordinator is SERVING (every
// worker loaded and agreeing with the plan), prints the endpoint, and on SIGINT / SIGTERM
// stops them all. A child that dies is reported (serve does not restart it); the coordinator
// keeps running and serves again once the worker is started again.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/util.h"
#include "common/health_client.h"
#include "common/planned_cluster.h"

namespace lp::cli {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

struct Child {
  std::string name;
  pid_t pid = -1;
};

std::string SiblingBinary(const std::string& name) {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / name).string();
}

pid_t Spawn(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    std::fprintf(stderr, "error: cannot run %s\n", argv[0]);
    _exit(127);
  }
  return pid;
}

void StopAll(std::vector<Child>& children) {
  for (auto& c : children) {
    if (c.pid > 0) kill(c.pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (auto& c : children) {
    while (c.pid > 0) {
      if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
        c.pid = -1;
      } else if (std::chrono::steady_clock::now() > deadline) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, nullptr, 0);
        c.pid = -1;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
}

// Reaps children that exited; reports each once.
void ReapExited(std::vector<Child>& children) {
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (auto& c : children) {
      if (c.pid != pid) continue;
      std::fprintf(stderr, "serve: %s exited (%s %d)\n", c.name.c_str(),
                   WIFEXITED(status) ? "code" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      c.pid = -1;
    }
  }
}

void RunServe(const std::string& cluster_path, double ready_timeout_s) {
  auto planned = LoadAndPlan(cluster_path);
  if (!planned.ok()) Fail(planned.status());
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  std::vector<Child> children;
  for (const auto& w : planned->cluster.workers) {
    if (!IsLocalAddress(w.address)) {
      std::fprintf(stderr, "serve: worker %s at %s is on another host: start it there\n",
                   w.name.c_str(), w.address.c_str());
      continue;
    }
    children.push_back({"worker " + w.name,
                        Spawn({SiblingBinary("layerpipe-worker"), cluster_path, "--name", w.name})});
  }
  children.push_back({"coordinator", Spawn({SiblingBinary("layerpipe-coordinator"), cluster_path})});

  std::string endpoint = planned->cluster.coordinator_listen;
  if (endpoint.rfind("0.0.0.0:", 0) == 0) endpoint = "127.0.0.1:" + endpoint.substr(8);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(int64_t(ready_timeout_s * 1000));
  while (CheckHealth(endpoint, 500) != Health::kServing) {
    ReapExited(children);
    const bool coordinator_gone = children.back().pid < 0;
    if (g_stop || coordinator_gone || std::chrono::steady_clock::now() > deadline) {
      StopAll(children);
      Fail(absl::UnavailableError(
          g_stop ? "interrupted"
                 : coordinator_gone ? "the coordinator exited (see its messages above)"
                                    : "the cluster did not become ready in time"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::printf("layerpipe: serving on %s (grpc layerpipe.v1.Inference); Ctrl-C stops\n",
              endpoint.c_str());
  std::fflush(stdout);
  while (!g_stop) {
    ReapExited(children);
    if (children.back().pid < 0) break;  // the coordinator is gone: nothing to serve
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::fprintf(stderr, "serve: stopping\n");
  StopAll(children);
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve", "start the coordinator and this host's workers of a cluster file; Ctrl-C stops");
  auto path = std::make_shared<std::string>();
  auto timeout = std::make_shared<double>(600);
  cmd->add_option("CLUSTER", *path, "cluster file (YAML)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--ready-timeout", *timeout, "seconds to wait for every worker to load")
      ->capture_default_str();
  cmd->callback([path, timeout] { RunServe(*path, *timeout); });
}

}  // namespace lp::cli
