// Small helpers shared by the subcommands.
#include "cli/util.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/cluster_config.h"

namespace lp::cli {

absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text) {
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError("no token ids given (expected e.g. 1,2,3)");
  }
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int64_t v = -1;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || v < 0 ||
        v > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", part, "' is not a token id (a non-negative integer)"));
    }
    ids.push_back(int32_t(v));
  }
  return ids;
}

const std::string& CheckEndpoint(const std::string& endpoint) {
  if (!IsHostPort(endpoint)) {
    Fail(absl::InvalidArgumentError(absl::StrCat(
             "--endpoint '", endpoint,
             "' needs host:port, e.g. 127.0.0.1:7000 (the port of "
             "coordinator.listen in the cluster file; without one gRPC would dial port 443)")),
         2);
  }
  return endpoint;
}

namespace {
std::vector<std::string> g_args;
}  // namespace

void RememberArgs(int argc, char** argv) { g_args.assign(argv, argv + argc); }

std::string SiblingBinary(const std::string& name) {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / name).string();
}

void RunCudaProgram() {
  std::string self = SiblingBinary("layerpipe-cuda");
  if (!std::filesystem::exists(self)) {
    Fail(absl::UnavailableError(absl::StrCat("this command needs the CUDA backend, and ", self,
                                             " is not there (a build without nvcc has none)")));
  }
  std::vector<char*> argv;
  argv.push_back(self.data());
  for (size_t i = 1; i < g_args.size(); ++i) argv.push_back(g_args[i].data());
  argv.push_back(nullptr);
  ::execv(self.c_str(), argv.data());
  Fail(absl::InternalError(absl::StrCat(self, ": cannot run: ", std::strerror(errno))));
}

void AddCudaForward(CLI::App& app, const std::string& name, const std::string& description) {
  auto* cmd = app.add_subcommand(name, description);
  cmd->prefix_command();  // every argument after the name goes to layerpipe-cuda as is
  cmd->set_help_flag();   // --help too
  cmd->callback([] { RunCudaProgram(); });
}

void Fail(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  throw CLI::RuntimeError(exit_code);
}

}  // namespace lp::cli
