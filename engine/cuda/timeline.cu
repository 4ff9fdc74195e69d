// The optional GPU timeline (see timeline.h).
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/timeline.h"

namespace lp::cuda {
namespace {

__global__ void WriteMark(unsigned long long* slot, unsigned int tag) {
  unsigned long long ns;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(ns));
  slot[0] = ns;
  slot[1] = tag;
}

}  // namespace

std::unique_ptr<Timeline> Timeline::FromEnvironment(cudaStream_t stream) {
  const char* dir = std::getenv("LP_GPU_TIMELINE");
  if (dir == nullptr || *dir == '\0') return nullptr;
  const std::string path = std::string(dir) + "/timeline-" + std::to_string(::getpid()) + ".txt";
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "LP_GPU_TIMELINE: cannot write %s\n", path.c_str());
    return nullptr;
  }
  return std::unique_ptr<Timeline>(new Timeline(stream, f));
}

Timeline::Timeline(cudaStream_t stream, std::FILE* file) : stream_(stream), file_(file) {
  CUDA_CHECK(cudaMalloc(&marks_, kCapacity * 2 * sizeof(unsigned long long)));
}

Timeline::~Timeline() {
  cudaStreamSynchronize(stream_);
  Write();
  cudaFree(marks_);
  std::fclose(file_);
}

void Timeline::Add(Mark mark) {
  if (count_ == kCapacity) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // rare: every kCapacity marks
    Write();
  }
  WriteMark<<<1, 1, 0, stream_>>>(marks_ + 2 * count_, unsigned(mark));
  CUDA_CHECK(cudaGetLastError());
  ++count_;
}

void Timeline::Write() {
  std::vector<unsigned long long> host(size_t(count_) * 2);
  if (count_ > 0) {
    CUDA_CHECK(
        cudaMemcpy(host.data(), marks_, host.size() * sizeof(host[0]), cudaMemcpyDeviceToHost));
  }
  for (int i = 0; i < count_; ++i) std::fprintf(file_, "%llu %llu\n", host[2 * i], host[2 * i + 1]);
  std::fflush(file_);
  count_ = 0;
}

}  // namespace lp::cuda
