// Choosing a worker's backend (see backend_factory.h).
#include "worker/backend_factory.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "worker/cpu/cpu_backend.h"
#ifdef LAYERPIPE_WITH_CUDA
#include "worker/cuda/cuda_backend.h"
#include "worker/cuda/device.h"
#endif

namespace lp {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int cpu_threads) {
  if (device.rfind("cpu:", 0) == 0) {
    SetCpuThreads(std::max(1, cpu_threads));
    return MakeCpuBackend(std::max(1, cpu_threads));
  }
  if (device.rfind("cuda:", 0) == 0) {
#ifdef LAYERPIPE_WITH_CUDA
    const int index = std::atoi(device.c_str() + 5);
    if (auto s = cuda::PinDevice(index); !s.ok()) return s;
    CudaBackendOptions options;
    options.on_weight_loaded = [next = uint64_t(1) << 30, device](uint64_t bytes) mutable {
      if (bytes < next) return;  // progress on the log, once per GiB
      std::fprintf(stderr, "%s: %.1f GiB of weights loaded\n", device.c_str(),
                   double(bytes) / (1ull << 30));
      next = bytes + (uint64_t(1) << 30);
    };
    return MakeCudaBackend(index, options);
#else
    return absl::UnimplementedError(
        absl::StrCat(device, ": this build has no CUDA backend (nvcc was not found)"));
#endif
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown device '", device, "'"));
}

int DefaultCpuThreads() {
  // A host's CPU workers mostly take turns (see the header), and an idle one waits passively.
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace lp
