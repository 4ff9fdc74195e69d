// Choosing a backend (see backend_factory.h). Compiled into lp_engine with the CUDA backend and
// into lp_engine_cpu without it.
#include "engine/backend_factory.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/device.h"
#include "engine/cpu/cpu_backend.h"
#ifdef LAYERPIPE_WITH_CUDA
#include "engine/cuda.h"
#endif

namespace lp {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device,
                                                     const BackendOptions& options) {
  auto parsed = Device::Parse(device);
  if (!parsed.ok()) return parsed.status();
  if (!parsed->cuda()) {
    if (options.cpu_threads > 0) SetCpuThreads(options.cpu_threads);
    return MakeCpuBackend(options.cpu_threads);
  }
#ifdef LAYERPIPE_WITH_CUDA
  const int index = parsed->index;
  if (auto s = cuda::PinDevice(index); !s.ok()) return s;
  CudaBackendOptions cuda_options;
  cuda_options.batch_invariant = options.batch_invariant;
  const std::string name = options.log_name.empty() ? device : options.log_name;
  cuda_options.on_weight_loaded = [next = uint64_t(1) << 30, name](uint64_t bytes) mutable {
    if (bytes < next) return;
    std::fprintf(stderr, "%s: %.1f GiB of weights loaded\n", name.c_str(),
                 double(bytes) / (1ull << 30));
    next = bytes + (uint64_t(1) << 30);
  };
  return MakeCudaBackend(index, cuda_options);
#else
  return absl::UnimplementedError(
      absl::StrCat(device,
                   ": this program has no CUDA backend (a build without nvcc, or a "
                   "program that does not load CUDA)"));
#endif
}

bool HasCudaBackend() {
#ifdef LAYERPIPE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int DefaultCpuThreads() {
  // A host's CPU workers mostly take turns (see the header), and an idle one waits passively.
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

void EnsurePassiveOpenMpWait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);  // on failure, carry on with the policy the runtime has
}

}  // namespace lp
