// Writing safetensors files, sharded with a model.safetensors.index.json, as Hugging Face
// lays them out. Tensor data is produced by a callback so that multi-GB random checkpoints
// stream to disk without being held in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace lp {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  // Writes the tensor's elements [first, first + count) as `dtype` into `out`.
  std::function<void(uint64_t first, uint64_t count, void* out)> fill;
  uint64_t num_bytes() const;
};

// One safetensors file with `tensors` in the given order.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

// Shards `tensors` in order into files of about `shard_bytes` (a tensor never splits), named
// model-0000K-of-0000N.safetensors, and writes model.safetensors.index.json beside them.
absl::Status WriteShardedCheckpoint(const std::string& dir,
                                    const std::vector<TensorToWrite>& tensors,
                                    uint64_t shard_bytes);

}  // namespace lp
