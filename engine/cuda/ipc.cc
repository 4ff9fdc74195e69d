// CUDA IPC between the worker processes of one host: each worker exports a ring of activation
// buffers with an interprocess event each, once at load; the next worker opens them once (an
// open costs about a millisecond: never per step). A hop is then a device-side wait on the
// previous worker's event and a device-to-device copy: no host round trip, no host memory.
//
// Ring slots are reused only after the micro-batch that last used them has left the pipeline
// (the coordinator keeps no more micro-batches in flight than there are slots), so a buffer is
// never overwritten while the next worker may still read it.
#include <cuda_runtime.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/cuda/backend_impl.h"
#include "engine/cuda/check.h"

namespace lp::cuda {
namespace {

absl::Status Failed(cudaError_t err, const char* call) {
  cudaGetLastError();  // clear it: IPC failures are reported, not fatal
  return absl::FailedPreconditionError(absl::StrCat(call, ": ", cudaGetErrorString(err)));
}

template <typename Handle>
std::string Bytes(const Handle& h) {
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
}

template <typename Handle>
bool FromBytes(const std::string& s, Handle* h) {
  if (s.size() != sizeof(Handle)) return false;
  std::memcpy(h, s.data(), sizeof(Handle));
  return true;
}

}  // namespace

absl::StatusOr<IpcExports> CudaBackend::ExportIpc(int count, size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device_));
  IpcExports out;
  for (int i = 0; i < count; ++i) {
    void* buffer = nullptr;
    cudaEvent_t event = nullptr;
    if (auto e = cudaMalloc(&buffer, bytes); e != cudaSuccess) return Failed(e, "cudaMalloc");
    ipc_own_buffers_.push_back(buffer);
    if (auto e = cudaEventCreateWithFlags(&event, cudaEventDisableTiming | cudaEventInterprocess);
        e != cudaSuccess) {
      return Failed(e, "cudaEventCreateWithFlags");
    }
    ipc_own_events_.push_back(event);
    cudaIpcMemHandle_t mem;
    cudaIpcEventHandle_t ev;
    if (auto e = cudaIpcGetMemHandle(&mem, buffer); e != cudaSuccess) {
      return Failed(e, "cudaIpcGetMemHandle");
    }
    if (auto e = cudaIpcGetEventHandle(&ev, event); e != cudaSuccess) {
      return Failed(e, "cudaIpcGetEventHandle");
    }
    out.buffers.push_back(Bytes(mem));
    out.events.push_back(Bytes(ev));
  }
  ipc_bytes_ = bytes;
  return out;
}

void CudaBackend::CloseImports() {
  for (void* p : ipc_peer_buffers_) cudaIpcCloseMemHandle(p);
  for (auto e : ipc_peer_events_) cudaEventDestroy(e);
  ipc_peer_buffers_.clear();
  ipc_peer_events_.clear();
}

absl::Status CudaBackend::ImportIpc(const IpcExports& peer) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // nothing may still read the old imports
  CloseImports();
  if (peer.buffers.size() != peer.events.size() || peer.buffers.empty()) {
    return absl::InvalidArgumentError("IPC exports need one event per buffer");
  }
  for (size_t i = 0; i < peer.buffers.size(); ++i) {
    cudaIpcMemHandle_t mem;
    cudaIpcEventHandle_t ev;
    if (!FromBytes(peer.buffers[i], &mem) || !FromBytes(peer.events[i], &ev)) {
      CloseImports();
      return absl::InvalidArgumentError("malformed CUDA IPC handle");
    }
    void* buffer = nullptr;
    cudaEvent_t event = nullptr;
    if (auto e = cudaIpcOpenMemHandle(&buffer, mem, cudaIpcMemLazyEnablePeerAccess); e != cudaSuccess) {
      CloseImports();
      return Failed(e, "cudaIpcOpenMemHandle");
    }
    ipc_peer_buffers_.push_back(buffer);
    if (auto e = cudaIpcOpenEventHandle(&event, ev); e != cudaSuccess) {
      CloseImports();
      return Failed(e, "cudaIpcOpenEventHandle");
    }
    ipc_peer_events_.push_back(event);
  }
  return absl::OkStatus();
}

void CudaBackend::ReceiveIpc(int slot, Tensor& dst) {
  Flush();
  LP_REQUIRE(slot >= 0 && size_t(slot) < ipc_peer_buffers_.size() && dst.dtype == DType::kF32);
  CUDA_CHECK(cudaStreamWaitEvent(stream_, ipc_peer_events_[size_t(slot)], 0));
  Note(Mark::kInputReady);
  CUDA_CHECK(cudaMemcpyAsync(dst.data, ipc_peer_buffers_[size_t(slot)], size_t(dst.numel()) * 4,
                             cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::SendIpc(int slot, const Tensor& src) {
  Flush();
  const size_t bytes = size_t(src.numel()) * 4;
  LP_REQUIRE(slot >= 0 && size_t(slot) < ipc_own_buffers_.size() && bytes <= ipc_bytes_);
  Note(Mark::kLayersDone);
  CUDA_CHECK(cudaMemcpyAsync(ipc_own_buffers_[size_t(slot)], src.data, bytes,
                             cudaMemcpyDeviceToDevice, stream_));
  CUDA_CHECK(cudaEventRecord(ipc_own_events_[size_t(slot)], stream_));
  Note(Mark::kSent);
}

}  // namespace lp::cuda
