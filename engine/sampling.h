// Token selection from one row of logits, written once on the host: the CPU backend's Sample
// and the oracle the CUDA sampling kernel is tested against. Both follow the same steps (see
// SampleParams in backend.h), so for the same `random` they pick the same token except where
// float rounding moves a top-p boundary or the draw lands on a probability boundary.
#pragma once

#include <cstdint>
#include <cstring>

#include "engine/backend.h"

namespace lp {

inline uint64_t SampleMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The uniform number in [0, 1) that SampleParams::random stands for.
inline float SampleUniform(uint64_t random) {
  return float(SampleMix64(random) >> 40) * (1.0f / float(1 << 24));
}

// Maps a float to an unsigned key of the same order (for threshold searches).
inline uint32_t OrderedKey(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

SampleResult SampleRow(const float* logits, int64_t vocab, const SampleParams& p);

}  // namespace lp
