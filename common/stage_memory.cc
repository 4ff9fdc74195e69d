// The stage memory model (see stage_memory.h for what is counted and why).
#include "common/stage_memory.h"

#include "common/protocol.h"

namespace lp {

StageCost::StageCost(const ModelConfig& config, const WeightSizes& sizes,
                     const ClusterLimits& limits)
    : config_(config), sizes_(sizes), limits_(limits) {
  auto element = TorchDtypeSize(config.torch_dtype);
  kv_element_cuda_ = element.ok() ? *element : 2;
  prefix_bytes_.assign(sizes.layers.size() + 1, 0);
  prefix_elements_.assign(sizes.layers.size() + 1, 0);
  for (size_t i = 0; i < sizes.layers.size(); ++i) {
    prefix_bytes_[i + 1] = prefix_bytes_[i] + sizes.layers[i].bytes;
    prefix_elements_[i + 1] = prefix_elements_[i] + sizes.layers[i].elements;
  }
}

uint64_t StageCost::LayerReads(bool cuda, int64_t begin, int64_t end) const {
  return cuda ? prefix_bytes_[end] - prefix_bytes_[begin]
              : (prefix_elements_[end] - prefix_elements_[begin]) * 4;
}

uint64_t StageCost::HeadReads(bool cuda) const {
  const ModuleSize& table = config_.tie_word_embeddings ? sizes_.embed : sizes_.head;
  return Resident(cuda, sizes_.norm) + Resident(cuda, table);
}

uint64_t StageCost::KvBlockBytes(bool cuda, int64_t begin, int64_t end) const {
  const uint64_t kv_element = cuda ? kv_element_cuda_ : 4;
  return uint64_t(end - begin) * 2 * uint64_t(config_.kv_dim()) *
         uint64_t(limits_.kv_block_tokens) * kv_element;
}

StageBytes StageCost::Bytes(bool cuda, int64_t begin, int64_t end, bool embed, bool head,
                            bool ipc_out) const {
  const ModelConfig& c = config_;
  const uint64_t layers = uint64_t(end - begin);
  StageBytes b;
  b.weight = LayerReads(cuda, begin, end);
  if (embed) b.weight += Resident(cuda, sizes_.embed);
  if (head) {
    b.weight += Resident(cuda, sizes_.norm);
    // A tied head reads the embedding table: shared when the embedding is here, else a copy.
    if (!c.tie_word_embeddings) b.weight += Resident(cuda, sizes_.head);
    if (c.tie_word_embeddings && !embed) b.weight += Resident(cuda, sizes_.embed);
  }
  b.read = LayerReads(cuda, begin, end) + (head ? HeadReads(cuda) : 0);

  b.kv = uint64_t(KvBlocksFor(limits_.max_context, limits_.kv_block_tokens)) *
         KvBlockBytes(cuda, begin, end);

  const uint64_t t = uint64_t(limits_.max_step_tokens), h = uint64_t(c.hidden_size);
  uint64_t floats = 2 * t * h;  // hidden state in and out
  if (layers > 0) {
    // residual, normed, proj; q, attn_out; k, v; gate, up, act (Slice::AllocateWorkspace)
    floats += t * (3 * h + 2 * uint64_t(c.q_dim()) + 2 * uint64_t(c.kv_dim()) +
                   3 * uint64_t(c.intermediate_size));
  }
  if (head) floats += uint64_t(limits_.max_batch) * (2 * h + uint64_t(c.vocab_size));
  if (ipc_out) floats += uint64_t(kIpcRing) * t * h;
  b.workspace = floats * 4;
  b.reserve = cuda ? kCudaReserve : kCpuReserve;
  return b;
}

}  // namespace lp
