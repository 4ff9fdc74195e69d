// Token selection on the GPU: one block per sequence over its row of logits (which stays in
// L2), following the steps of SampleRow (engine/sampling.cc) exactly, with the same arithmetic
// (engine/sample_steps.h) and the same draw (common/random.h): argmax and log-sum-exp; the top-N
// log-probabilities by N passes that each take the next largest (value, id); the repetition
// penalty in place on the row's seen tokens (restored at the end), then the argmax again; then,
// when sampling, the top-k and top-p thresholds found by binary search over the order-keeping
// integer keys of the logits (32 counting passes each: no sort of the vocabulary), the min-p
// threshold from the largest logit, and the draw by a prefix sum in vocabulary order. So a
// sequence gets the same token on the GPU as on the CPU, whatever its neighbours ask for, and
// no logits leave the device.
#include <climits>

#include "common/random.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/kernels.h"
#include "engine/sample_steps.h"

namespace lp::cuda {
namespace {

constexpr int kThreads = 1024;

struct Best {
  float v;
  int i;
};

__device__ __forceinline__ bool Better(float v, int i, const Best& b) {
  return v > b.v || (v == b.v && i < b.i);
}

__device__ Best BlockArgMax(Best b, Best* sm) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, b.v, o);
    const int i = __shfl_xor_sync(0xffffffffu, b.i, o);
    if (Better(v, i, b)) b = {v, i};
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) sm[threadIdx.x / 32] = b;
  __syncthreads();
  b = sm[0];
  for (int w = 1; w < int(blockDim.x / 32); ++w) {
    if (Better(sm[w].v, sm[w].i, b)) b = sm[w];
  }
  return b;
}

__device__ __forceinline__ uint32_t Key(float f) { return OrderedKey(f); }

// Largest key t >= lo with f(t) >= goal, f decreasing in t (f(lo) >= goal holds).
template <typename F>
__device__ uint32_t SearchKey(uint32_t lo, float goal, F f) {
  uint32_t hi = 0xffffffffu;
  while (lo < hi) {
    const uint32_t mid = lo + uint32_t((uint64_t(hi) - lo + 1) / 2);
    if (f(mid) >= goal) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// ---- kernels

// The drawn token of a row (temperature > 0): thresholds, then the prefix-sum draw.
__device__ int Draw(const float* l, int vocab, float m, const DeviceSampleParams& p) {
  __shared__ float sm_sum[32];
  __shared__ float sm_scan[32];
  __shared__ int sm_found, sm_last;
  const float inv_t = 1.0f / p.temperature;
  auto count_from = [&](uint32_t t) {
    float n = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) n += Key(l[i]) >= t ? 1.0f : 0.0f;
    return BlockSum(n, sm_sum);
  };
  auto mass_from = [&](uint32_t t) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      if (Key(l[i]) >= t) s += expf((l[i] - m) * inv_t);
    }
    return BlockSum(s, sm_sum);
  };
  uint32_t lo = 0;
  if (p.top_k > 0 && p.top_k < vocab) lo = SearchKey(0, float(p.top_k), count_from);
  if (p.top_p < 1.0f) lo = SearchKey(lo, p.top_p * mass_from(lo), mass_from);
  // min-p is relative to the most likely token, which every cut keeps: its threshold combines.
  if (p.min_p > 0.0f) lo = max(lo, Key(MinPLogit(m, p.temperature, p.log_min_p)));
  const float target = SampleUniform(p.seed, p.position) * mass_from(lo);
  // Prefix sum in vocabulary order over contiguous chunks, one per thread.
  const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int first = threadIdx.x * chunk, last = min(vocab, first + chunk);
  float local = 0.0f;
  int last_in = -1;
  for (int i = first; i < last; ++i) {
    if (Key(l[i]) >= lo) {
      local += expf((l[i] - m) * inv_t);
      last_in = i;
    }
  }
  float incl = local;  // inclusive scan in the warp, then over warp totals
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  if (threadIdx.x == 0) {
    sm_found = INT_MAX;
    sm_last = -1;
  }
  if (lane == 31) sm_scan[warp] = incl;
  __syncthreads();
  float before = incl - local;
  for (int w = 0; w < warp; ++w) before += sm_scan[w];
  if (last_in >= 0) atomicMax(&sm_last, last_in);
  if (local > 0.0f && before <= target && target < before + local) {
    float acc = before;
    for (int i = first; i < last; ++i) {
      if (Key(l[i]) < lo) continue;
      acc += expf((l[i] - m) * inv_t);
      if (acc > target) {
        atomicMin(&sm_found, i);
        break;
      }
    }
  }
  __syncthreads();
  return sm_found != INT_MAX ? sm_found : sm_last;
}

// The repetition penalty on the row's seen tokens (raw values kept in `raw`; a repeated token
// gets the same value twice), or, with restore, the raw values back.
__device__ void Penalize(float* l, int vocab, const int32_t* seen, float* raw, int n, float penalty,
                         bool restore) {
  __syncthreads();  // every thread is done reading the row as it was
  if (!restore) {
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      if (seen[j] >= 0 && seen[j] < vocab) raw[j] = l[seen[j]];
    }
    __syncthreads();
  }
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    if (seen[j] >= 0 && seen[j] < vocab) {
      l[seen[j]] = restore ? raw[j] : PenalizedLogit(raw[j], penalty);
    }
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kThreads)
    SampleKernel(float* logits, int64_t vocab_, const DeviceSampleParams* params,
                 const int32_t* seen_ids, float* seen_raw, DeviceSampleResult* out) {
  __shared__ Best sm_best[32];
  __shared__ float sm_sum[32];
  const int vocab = int(vocab_);
  float* l = logits + int64_t(blockIdx.x) * vocab;
  const DeviceSampleParams p = params[blockIdx.x];
  DeviceSampleResult* res = out + blockIdx.x;
  Best b{-INFINITY, INT_MAX};
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (Better(l[i], i, b)) b = {l[i], i};
  }
  b = BlockArgMax(b, sm_best);
  const float m = b.v;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(l[i] - m);
  const float lse = m + logf(BlockSum(sum, sm_sum));
  Best prev{INFINITY, -1};
  for (int k = 0; k < p.num_logprobs && k < vocab; ++k) {
    Best c{-INFINITY, INT_MAX};
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float v = l[i];
      const bool after = v < prev.v || (v == prev.v && i > prev.i);
      if (after && Better(v, i, c)) c = {v, i};
    }
    prev = BlockArgMax(c, sm_best);
    if (threadIdx.x == 0) {
      res->top_ids[k] = prev.i;
      res->top_logprobs[k] = prev.v - lse;
    }
  }
  int id = b.i;
  float top = m;
  const int32_t* seen = seen_ids + p.seen_offset;
  float* raw = seen_raw + p.seen_offset;
  if (p.seen_count > 0) {
    Penalize(l, vocab, seen, raw, p.seen_count, p.repetition_penalty, false);
    Best c{-INFINITY, INT_MAX};
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      if (Better(l[i], i, c)) c = {l[i], i};
    }
    c = BlockArgMax(c, sm_best);
    id = c.i;
    top = c.v;
  }
  if (p.temperature > 0.0f) id = Draw(l, vocab, top, p);
  if (p.seen_count > 0) Penalize(l, vocab, seen, raw, p.seen_count, p.repetition_penalty, true);
  if (threadIdx.x == 0) {
    res->id = id;
    res->logprob = l[id] - lse;
  }
}

}  // namespace

// ---- launchers

void LaunchSample(float* logits, int64_t rows, int64_t vocab, const DeviceSampleParams* params,
                  const int32_t* seen, float* seen_raw, DeviceSampleResult* out, cudaStream_t s) {
  LP_REQUIRE(rows > 0 && vocab > 0 && vocab < INT_MAX);
  SampleKernel<<<unsigned(rows), kThreads, 0, s>>>(logits, vocab, params, seen, seen_raw, out);
  LAUNCH_CHECK(SampleKernel);
}

}  // namespace lp::cuda
