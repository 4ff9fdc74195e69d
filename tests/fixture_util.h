// Loading the Hugging Face reference outputs of tests/fixtures/ (see fixtures/README.md).
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace lp::testing {

// The fixtures' directory: $LP_FIXTURES where set (a test binary carried to another machine),
// else the source tree's.
inline std::string FixtureDir(const std::string& name) {
  const char* env = std::getenv("LP_FIXTURES");
  return std::string(env != nullptr && *env != 0 ? env : LP_FIXTURES) + "/" + name;
}

inline nlohmann::json LoadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// logits_last.f32: [cases, vocab] float32.
inline std::vector<float> LoadLogits(const std::string& dir, size_t cases, size_t vocab) {
  std::vector<float> v(cases * vocab);
  std::ifstream in(dir + "/logits_last.f32", std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * 4));
  return v;
}

}  // namespace lp::testing
