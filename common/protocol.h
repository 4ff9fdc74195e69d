// Constants both ends of the coordinator-worker protocol must agree on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lp {

// Bumped on any incompatible change of proto/layerpipe/v1/worker.proto's meaning.
inline constexpr uint32_t kProtocolVersion = 6;  // 6: kSampledBefore
// A decode id that the worker fills in: the token it sampled last for the chunk's slot, at the
// chunk's position (a decode step sent before the previous one's answer, to a worker that both
// embeds and samples; coordinator/scheduler_core.h, "Decode ahead").
inline constexpr int32_t kSampledBefore = -1;
// Activation buffers each CUDA worker exports to the next one on its host; micro-batches in
// flight never exceed it.
inline constexpr int kIpcRing = 8;
// Activations travel in pieces of at most this many bytes (gRPC's default message limit is
// 4 MiB; a long prefill's hidden state is far larger).
inline constexpr size_t kChunkBytes = 1 << 20;

}  // namespace lp
