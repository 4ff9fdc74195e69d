// Safetensors parsing and validation (rules from the format's reference implementation).
#include "common/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace lp {
namespace {

using json = nlohmann::json;

absl::Status Bad(const std::string& what) { return absl::InvalidArgumentError(what); }

// Multiplies with an overflow check; false when a * b does not fit in 64 bits.
bool MulChecked(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

absl::StatusOr<TensorInfo> ParseEntry(const std::string& name, const json& entry) {
  if (!entry.is_object()) return Bad(absl::StrCat("tensor '", name, "': entry is not an object"));
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || shape_it == entry.end() || offsets_it == entry.end()) {
    return Bad(absl::StrCat("tensor '", name, "': needs dtype, shape and data_offsets"));
  }
  if (!dtype_it->is_string()) return Bad(absl::StrCat("tensor '", name, "': dtype not a string"));
  const std::string dtype_name = dtype_it->get<std::string>();
  auto dtype = ParseDType(dtype_name);
  if (!dtype) return Bad(absl::StrCat("tensor '", name, "': unknown dtype '", dtype_name, "'"));

  TensorInfo info;
  info.name = name;
  info.dtype = *dtype;
  if (!shape_it->is_array()) return Bad(absl::StrCat("tensor '", name, "': shape not a list"));
  for (const auto& d : *shape_it) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
      return Bad(absl::StrCat("tensor '", name, "': shape has a non-integer or negative entry"));
    }
    const uint64_t v = d.get<uint64_t>();
    if (v > uint64_t(std::numeric_limits<int64_t>::max())) {
      return Bad(absl::StrCat("tensor '", name, "': shape entry too large"));
    }
    info.shape.push_back(int64_t(v));
  }
  if (!offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    // nlohmann parses non-negative integers as unsigned, so negatives fail here too.
    return Bad(absl::StrCat("tensor '", name, "': data_offsets must be two non-negative integers"));
  }
  info.begin = (*offsets_it)[0].get<uint64_t>();
  info.end = (*offsets_it)[1].get<uint64_t>();
  if (info.end < info.begin) {
    return Bad(absl::StrCat("tensor '", name, "': data_offsets end before they begin"));
  }
  uint64_t bytes = DTypeSize(info.dtype);
  for (int64_t d : info.shape) {
    if (!MulChecked(bytes, uint64_t(d), &bytes)) {
      return Bad(absl::StrCat("tensor '", name, "': shape overflows 64 bits"));
    }
  }
  if (bytes != info.num_bytes()) {
    return Bad(absl::StrCat("tensor '", name, "': shape and dtype need ", bytes,
                            " bytes but data_offsets span ", info.num_bytes()));
  }
  return info;
}

}  // namespace

uint64_t TensorInfo::num_elements() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

absl::StatusOr<SafetensorsFile::Header> SafetensorsFile::Parse(const uint8_t* data, size_t size) {
  if (size < 8) return Bad(absl::StrCat("file of ", size, " bytes is too short for a header"));
  uint64_t n = 0;
  std::memcpy(&n, data, 8);  // little-endian host
  if (n > kMaxSafetensorsHeader) {
    return Bad(absl::StrCat("header length ", n, " exceeds the 100 MB limit"));
  }
  if (n > size - 8) {
    return Bad(absl::StrCat("header length ", n, " runs past the end of the ", size, "-byte file"));
  }
  const char* text = reinterpret_cast<const char*>(data + 8);
  if (n == 0 || text[0] != '{') return Bad("header does not start with '{'");
  json root = json::parse(text, text + n, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Bad("header is not well-formed JSON");
  if (!root.is_object()) return Bad("header is not a JSON object");

  Header header;
  header.data_start = 8 + n;
  std::vector<const TensorInfo*> order;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Bad("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) return Bad(absl::StrCat("__metadata__['", k, "'] is not a string"));
        header.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    auto info = ParseEntry(name, entry);
    if (!info.ok()) return info.status();
    header.tensors[name] = std::move(*info);
  }
  for (const auto& [name, info] : header.tensors) order.push_back(&info);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  for (const TensorInfo* info : order) {
    if (info->begin != expected) {
      return Bad(absl::StrCat("tensor '", info->name, "': data starts at ", info->begin,
                              info->begin < expected ? ", overlapping the previous tensor"
                                                     : ", leaving a hole after the previous tensor",
                              " (expected ", expected, ")"));
    }
    expected = info->end;
  }
  const uint64_t data_size = size - header.data_start;
  if (expected != data_size) {
    return Bad(absl::StrCat("tensor data spans ", expected, " bytes but the file holds ", data_size,
                            " after the header (truncated or padded file)"));
  }
  return header;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  auto file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  auto header = Parse((*file)->data(), (*file)->size());
  if (!header.ok()) {
    return absl::Status(header.status().code(),
                        absl::StrCat(path, ": ", header.status().message()));
  }
  return std::unique_ptr<SafetensorsFile>(
      new SafetensorsFile(std::move(*file), std::move(*header)));
}

TensorView SafetensorsFile::Find(const std::string& name) const {
  auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) return {};
  return {&it->second, file_->data() + header_.data_start + it->second.begin};
}

}  // namespace lp
