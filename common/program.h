// What every layerpipe program does with its command line (header-only: the programs link
// CLI11, the libraries do not): `--version`, and one exit-code scheme for all of them —
//   0  success (also --help and --version)
//   1  runtime error (a message on stderr: "error: ...")
//   2  usage error (a bad flag or value; CLI11's own codes, 100 and up, become 2)
#pragma once

#include <cstdio>
#include <exception>
#include <string>

#include "CLI/CLI.hpp"

namespace lp {

inline constexpr const char* kVersion = LAYERPIPE_VERSION;

// Parses the command line (running a subcommand's callback, if any). Returns -1 to go on, or
// the exit code to leave with.
inline int ParseCommandLine(CLI::App& app, int argc, char** argv) {
  const std::string program = argc > 0 ? argv[0] : "layerpipe";
  app.set_version_flag("--version", program.substr(program.rfind('/') + 1) + " " + kVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // lp::cli::Fail: the message is already printed
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // prints help, the version or the error
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return -1;
}

}  // namespace lp
