// A worker's device as a value: a GPU of its host ("cuda:N") or its CPU ("cpu:N"). Parsed once,
// from any spelling Hugging Face's device_map accepts; its normalized text ("cuda:1") is what
// the cluster file's plan, the handshake and the logs carry.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace lp {

struct Device {
  enum class Kind { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  int index = 0;

  // An integer N (a GPU), "cuda:N", "cpu:N", bare "cuda" / "cpu" (index 0). Anything else
  // ("disk", "gpu:1") is an error that says why.
  static absl::StatusOr<Device> Parse(const std::string& text);
  bool cuda() const { return kind == Kind::kCuda; }
  std::string ToString() const;  // "cuda:N" / "cpu:N"
  bool operator==(const Device&) const = default;
};

// Whether `text` is a CUDA device (false for anything Device::Parse refuses).
bool IsCudaDevice(const std::string& text);

}  // namespace lp
