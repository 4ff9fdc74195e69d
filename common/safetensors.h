// A safetensors file, memory-mapped and validated as the format's reference implementation
// does: header length inside the file and at most 100 MB, well-formed JSON, known dtypes,
// tensor data sorted, contiguous, without holes or overlaps, exactly filling the data section,
// and each tensor's byte size equal to its shape's element count times the element size.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/mapped_file.h"

namespace lp {

inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets inside the data section
  uint64_t end = 0;
  uint64_t num_elements() const;
  uint64_t num_bytes() const { return end - begin; }
};

// A read-only view of one tensor's bytes inside a mapped file.
struct TensorView {
  const TensorInfo* info = nullptr;
  const uint8_t* data = nullptr;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`; any defect is an error naming the file (and tensor).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  struct Header {
    std::map<std::string, TensorInfo> tensors;
    std::map<std::string, std::string> metadata;
    uint64_t data_start = 0;  // 8 + header length
  };
  // Validates a whole file image (what Open does after mapping; the tests call it directly).
  static absl::StatusOr<Header> Parse(const uint8_t* data, size_t size);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // view.info == nullptr when the file has no such tensor.
  TensorView Find(const std::string& name) const;

 private:
  SafetensorsFile(std::unique_ptr<MappedFile> file, Header header)
      : file_(std::move(file)), header_(std::move(header)) {}
  std::unique_ptr<MappedFile> file_;
  Header header_;
};

}  // namespace lp
