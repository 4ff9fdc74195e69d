// Where the fuzz targets that need a model find tests/fixtures/: $LP_FIXTURES where set (as for
// the tests), else the source tree's, compiled in (LP_FIXTURES), which both the CTest replay
// and scripts/fuzz.sh's build see.
#pragma once

#include <cstdlib>
#include <string>

namespace lp::fuzz {

inline std::string FixtureDir(const std::string& name) {
  const char* env = std::getenv("LP_FIXTURES");
  return std::string(env != nullptr && *env != 0 ? env : LP_FIXTURES) + "/" + name;
}

}  // namespace lp::fuzz
