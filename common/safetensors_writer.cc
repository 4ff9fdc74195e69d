// Writing safetensors files and sharded checkpoints (see safetensors_writer.h).
#include "common/safetensors_writer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace lp {

uint64_t TensorToWrite::num_bytes() const {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.num_bytes()}}};
    offset += t.num_bytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), std::fclose);
  if (!f) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create"));
  const uint64_t n = text.size();
  bool ok = std::fwrite(&n, 8, 1, f.get()) == 1 && std::fwrite(text.data(), 1, n, f.get()) == n;
  constexpr uint64_t kChunkElems = 1 << 20;
  std::vector<uint8_t> buf;
  for (const auto& t : tensors) {
    const uint64_t elems = t.num_bytes() / DTypeSize(t.dtype);
    for (uint64_t first = 0; ok && first < elems; first += kChunkElems) {
      const uint64_t count = std::min(kChunkElems, elems - first);
      buf.resize(count * DTypeSize(t.dtype));
      t.fill(first, count, buf.data());
      ok = std::fwrite(buf.data(), 1, buf.size(), f.get()) == buf.size();
    }
  }
  if (!ok) return absl::DataLossError(absl::StrCat(path, ": write failed (disk full?)"));
  return absl::OkStatus();
}

absl::Status WriteShardedCheckpoint(const std::string& dir,
                                    const std::vector<TensorToWrite>& tensors,
                                    uint64_t shard_bytes) {
  std::vector<std::vector<TensorToWrite>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& t : tensors) {
    if (in_shard > 0 && in_shard + t.num_bytes() > shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(t);
    in_shard += t.num_bytes();
    total += t.num_bytes();
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = nlohmann::ordered_json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name =
        absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    for (const auto& t : shards[i]) index["weight_map"][t.name] = name;
    if (auto s = WriteSafetensors((std::filesystem::path(dir) / name).string(), shards[i]);
        !s.ok()) {
      return s;
    }
  }
  std::ofstream out(std::filesystem::path(dir) / "model.safetensors.index.json");
  out << index.dump(2) << "\n";
  if (!out) return absl::DataLossError(absl::StrCat(dir, ": cannot write the index"));
  return absl::OkStatus();
}

}  // namespace lp
