// The one random generator of the project (SplitMix64) and its mapping to a uniform float, for
// host C++ and CUDA device code alike: the sampler's draw must be the same number on the CPU and
// on the GPU, and random weights the same whichever side fills them.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define LP_HOST_DEVICE __host__ __device__
#else
#define LP_HOST_DEVICE
#endif

namespace lp {

// SplitMix64's increment (2^64 / golden ratio).
inline constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;

// SplitMix64's output function (Stafford's mix 13): a bijection that scrambles every bit.
LP_HOST_DEVICE inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The SplitMix64 output for state x (the generator steps x by kSplitMixGamma): also a good hash
// of x on its own.
LP_HOST_DEVICE inline uint64_t SplitMix64(uint64_t x) { return Mix64(x + kSplitMixGamma); }

// A uniform float in [0, 1) from the top 24 bits of r (every value exactly representable).
LP_HOST_DEVICE inline float UniformFloat(uint64_t r) {
  return float(r >> 40) * (1.0f / 16777216.0f);
}

// The uniform number that picks the token at `position` of a request seeded `seed`: it depends
// on nothing else, so a sequence samples the same tokens alone or in any batch, on any backend.
LP_HOST_DEVICE inline float SampleUniform(uint64_t seed, int64_t position) {
  return UniformFloat(SplitMix64(SplitMix64(SplitMix64(seed) ^ uint64_t(position))));
}

}  // namespace lp
