// The memory model of one pipeline stage: what a worker holding layers [begin, end) (plus the
// embedding on the first stage, final norm + lm_head on the last) needs on its device, and how
// many weight bytes it reads per decode step. Hugging Face budgets weights only; a worker also
// holds its layers' KV cache for the configured limits, activation buffers for the largest
// step, and the runtime's own memory, and runs out of memory at generation time if those are
// not counted at placement time. Placement asks room for the KV blocks of one sequence at the
// context limit; the plan then gives each worker's KV cache what its budget has left.
//
// Assumptions, matched to the worker code (engine/slice.cc, the backends):
//  - CPU workers convert weights to float32 at load and keep the KV cache in float32.
//  - GPU workers keep weights as stored and the KV cache in the checkpoint's 16-bit type.
//  - Activations are float32 on both: Slice::AllocateWorkspace's buffers for max_step_tokens
//    rows, the incoming and outgoing hidden states, and on the last stage the logits rows.
//  - A GPU worker whose next worker is reached over CUDA IPC exports a ring of kIpcRing
//    float32 buffers of max_step_tokens rows (worker_core.cc), counted as workspace.
//  - Runtime reserve: kCudaReserve per GPU (CUDA context, cuBLAS workspace, allocator slack),
//    kCpuReserve per CPU worker (process, thread stacks, BLAS buffers).
#pragma once

#include <cstdint>
#include <vector>

#include "common/byte_size.h"
#include "common/cluster_config.h"
#include "common/model_config.h"
#include "common/weight_sizes.h"

namespace lp {

inline constexpr uint64_t kCudaReserve = 1 * kGiB;
inline constexpr uint64_t kCpuReserve = 256 * kMiB;

struct StageBytes {
  uint64_t weight = 0;     // resident weights, tied-head copy included
  uint64_t kv = 0;         // the least KV cache: blocks for one sequence of max_context
  uint64_t workspace = 0;  // activation buffers
  uint64_t reserve = 0;    // runtime reserve
  uint64_t read = 0;       // weight bytes read per decode step (see StageCost::Bytes)
  uint64_t total() const { return weight + kv + workspace + reserve; }
};

// Prices stages of one model under one set of limits; cheap to call (prefix sums), so the
// planner can try every split.
class StageCost {
 public:
  StageCost(const ModelConfig& config, const WeightSizes& sizes, const ClusterLimits& limits);

  // A stage's memory and per-step reads. `read` counts what limits a pipeline stage's time
  // per decode step, the weights it streams from memory: its layers, plus final norm and
  // lm_head (for a tied model the embedding table, which the head multiplies by) on the last
  // stage. The embedding on the first stage is a lookup of a few rows: memory, no time.
  // `ipc_out`: the stage exports a CUDA IPC ring to the next worker.
  StageBytes Bytes(bool cuda, int64_t begin, int64_t end, bool embed, bool head,
                   bool ipc_out) const;

  // Bytes of one KV-cache block (kv_block_tokens positions) of the layers [begin, end).
  uint64_t KvBlockBytes(bool cuda, int64_t begin, int64_t end) const;

  // Per-step reads of the layers [begin, end) and of the head, on a device kind.
  uint64_t LayerReads(bool cuda, int64_t begin, int64_t end) const;
  uint64_t HeadReads(bool cuda) const;

 private:
  uint64_t Resident(bool cuda, const ModuleSize& m) const {
    return cuda ? m.bytes : m.elements * 4;  // CPU: float32 copies
  }

  ModelConfig config_;
  WeightSizes sizes_;
  ClusterLimits limits_;
  uint64_t kv_element_cuda_ = 2;
  std::vector<uint64_t> prefix_bytes_;     // prefix sums over layers, as stored
  std::vector<uint64_t> prefix_elements_;  // and in elements
};

}  // namespace lp
