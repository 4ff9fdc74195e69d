// A Hugging Face checkpoint directory: config.json, model.safetensors or shards with
// model.safetensors.index.json. Shards are mapped on first use, so a worker that asks only for
// its own layers' tensors maps only the files that hold them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/model_layout.h"
#include "common/safetensors.h"

namespace lp {

// The parts of two Checkpoint::Fingerprint()s that differ, named ("config.json, tensor
// contents"); empty when they are equal.
std::string FingerprintDifference(const std::string& a, const std::string& b);

// model.safetensors.index.json's weight_map: tensor name -> shard, a plain file name in the
// checkpoint's directory (never a path, "." or ".."). INVALID_ARGUMENT for anything else.
absl::StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(
    const std::string& json_text);

struct CheckpointSummary {
  std::string architecture;
  int64_t num_layers = 0;
  int64_t num_parameters = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;
  std::vector<std::string> files;
  std::vector<std::string> ignored;  // tensors present but not used (explained)
  // Quantized checkpoints: decoder linears stored in 4 bits, stored dense
  // (modules_to_not_convert), and packed with GPTQ act order (g_idx not in order).
  int64_t packed_linears = 0;
  int64_t dense_linears = 0;
  int64_t act_order_linears = 0;
};

class Checkpoint {
 public:
  // Reads config.json and the index (or the single file's header); maps nothing else.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }

  // The tensor `expected.name`, checked against `expected.shape` and for a float dtype.
  absl::StatusOr<TensorView> Get(const ExpectedTensor& expected);
  // What two processes compare to know that they load the same checkpoint (the coordinator
  // checks every worker's): hashes of config.json, generation_config.json, every tensor's name,
  // file, dtype, shape and byte size, and a sample of every tensor's bytes (its first and last
  // 4 KiB), as "config=H generation=H tensors=H content=H". Maps every file, reads only the
  // samples.
  absl::StatusOr<std::string> Fingerprint();
  // Files mapped so far, by file name.
  std::vector<std::string> OpenedFiles() const;

  // Refuses a tensor in the index that config.json does not imply (a config.json with fewer
  // layers than the checkpoint holds, say); returns the ones it ignores with a reason.
  absl::StatusOr<std::vector<std::string>> CheckNothingUnexpected() const;

  // Maps every file and checks the whole checkpoint: every tensor config.json implies present
  // with its shape, nothing unexplained, the index agreeing with the files.
  absl::StatusOr<CheckpointSummary> Validate();

 private:
  Checkpoint(std::string dir, ModelConfig config) : dir_(std::move(dir)), config_(config) {}
  absl::StatusOr<SafetensorsFile*> File(const std::string& file_name);

  std::string dir_;
  ModelConfig config_;
  std::map<std::string, std::string> weight_map_;  // tensor name -> file name
  bool indexed_ = false;                           // true when sharded with an index
  std::string config_text_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace lp
