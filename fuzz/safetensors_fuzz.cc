// Fuzz target: a safetensors file image (SafetensorsFile::Parse, what Open runs on the mapped
// file). Whatever it accepts must describe tensors that lie inside the data section with the
// byte size their dtype and shape need.
#include <cstdint>
#include <cstdlib>

#include "common/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = lp::SafetensorsFile::Parse(data, size);
  if (!header.ok()) return 0;
  const uint64_t data_size = size - header->data_start;
  for (const auto& [name, info] : header->tensors) {
    if (info.begin > info.end || info.end > data_size) std::abort();
    if (info.num_elements() * lp::DTypeSize(info.dtype) != info.num_bytes()) std::abort();
  }
  return 0;
}
