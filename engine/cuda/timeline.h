// An optional GPU timeline, for finding where a pipeline's time goes when no profiler is at
// hand: with LP_GPU_TIMELINE=DIR set, the backend queues marks on its stream (a one-thread
// kernel writes the GPU's global nanosecond timer, which every process on a GPU shares) and
// appends them to DIR/timeline-PID.txt as "ns tag" lines. tools/gpu_timeline.py merges the
// files of a cluster's workers into hop, stage and between-step times. Off (no marks, no
// cost) unless the variable is set. Every 4096 marks the backend waits for its stream to write
// them out, which shows in the timeline as one slow step.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <memory>

namespace lp::cuda {

enum class Mark : uint32_t {
  kStepStart = 0,   // the step's layout is on the device
  kInputReady = 1,  // the previous worker's activation slot is ready (CUDA IPC)
  kLayers = 2,      // a recorded decode step's replay starts (prefill steps have no mark)
  kLayersDone = 3,  // the output is ready, before the hand-over copy
  kSent = 4,        // the hand-over copy is done and its event recorded
  kSample = 5,      // sampling starts
  kSampled = 6,     // sampling is done
};

class Timeline {
 public:
  // Null unless LP_GPU_TIMELINE names a folder.
  static std::unique_ptr<Timeline> FromEnvironment(cudaStream_t stream);
  ~Timeline();
  void Add(Mark mark);

 private:
  static constexpr int kCapacity = 4096;
  Timeline(cudaStream_t stream, std::FILE* file);
  void Write();

  cudaStream_t stream_;
  std::FILE* file_;
  unsigned long long* marks_ = nullptr;  // [kCapacity][2] on the device: ns, tag
  int count_ = 0;
};

}  // namespace lp::cuda
