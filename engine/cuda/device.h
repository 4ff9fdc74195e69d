// CUDA device discovery and a self-test: how a worker pins its GPU and how the GPU tests tell
// that there is none (CI builds this code but has no GPU).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace lp::cuda {

// Number of visible CUDA devices (0 when there is no driver or no GPU).
int DeviceCount();
// "NVIDIA H100 80GB HBM3, 79.2 GiB, sm_90" for device `index`.
absl::StatusOr<std::string> DeviceDescription(int index);
// Makes `index` the current device of the calling thread; fails when it does not exist.
absl::Status PinDevice(int index);
// "12.3 GiB free of 79.2 GiB" for the current device.
std::string MemoryInfo();
// Free bytes on the current device (0 when unknown).
size_t FreeMemory();
// Whether the launchers chain a step's kernels (cuda/common.cuh, LaunchChained): on by default
// on GPUs of compute capability 9.0 and later; SetChainedLaunches(false) turns it off for the
// process (to compare), and true cannot turn it on where the GPU lacks it.
bool ChainedLaunches();
void SetChainedLaunches(bool on);
// Runs a small kernel and a cuBLAS call on the current device and checks their results.
absl::Status SelfTest();

}  // namespace lp::cuda
