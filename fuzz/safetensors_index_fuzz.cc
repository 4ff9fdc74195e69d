// Fuzz target: model.safetensors.index.json (ParseSafetensorsIndex). A shard it accepts must be
// a plain file name, never a path out of the checkpoint's directory.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (64 << 10)) return 0;  // an index is a few KB of JSON
  auto index = lp::ParseSafetensorsIndex(std::string(reinterpret_cast<const char*>(data), size));
  if (!index.ok()) return 0;
  for (const auto& [name, file] : *index) {
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos) {
      std::abort();
    }
  }
  return 0;
}
