// The CUDA IPC ring (see ipc_ring.h). In a build without CUDA, Export and Import say so.
#include "worker/ipc_ring.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lp {
namespace {

// A caller's broken precondition (a slot out of range) is a bug: fatal, with its line.
void Require(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "fatal: IPC ring precondition failed (ipc_ring.cc:%d)\n", line);
  std::abort();
}

}  // namespace
}  // namespace lp

#ifdef LAYERPIPE_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda.h"

namespace lp {
namespace {

absl::Status Failed(cudaError_t err, const char* call) {
  cudaGetLastError();  // clear it: IPC set-up failures are reported, not fatal
  return absl::FailedPreconditionError(absl::StrCat(call, ": ", cudaGetErrorString(err)));
}

// A failure while queueing a hop's copy is not recoverable, as in the backend.
void Check(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return;
  std::fprintf(stderr, "fatal: %s failed: %s\n", call, cudaGetErrorString(err));
  std::abort();
}

cudaStream_t StreamOf(Backend& b) { return static_cast<cudaStream_t>(CudaStream(b)); }

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

absl::StatusOr<std::unique_ptr<IpcRing>> IpcRing::Export(Backend& b, int count, size_t bytes) {
  if (CudaStream(b) == nullptr) return absl::UnimplementedError("not a CUDA worker");
  std::unique_ptr<IpcRing> ring(new IpcRing(b, /*owner=*/true));
  ring->bytes_ = bytes;
  for (int i = 0; i < count; ++i) {
    void* buffer = nullptr;
    cudaEvent_t event = nullptr;
    if (auto e = cudaMalloc(&buffer, bytes); e != cudaSuccess) return Failed(e, "cudaMalloc");
    ring->buffers_.push_back(buffer);
    if (auto e = cudaEventCreateWithFlags(&event, cudaEventDisableTiming | cudaEventInterprocess);
        e != cudaSuccess) {
      return Failed(e, "cudaEventCreateWithFlags");
    }
    ring->events_.push_back(event);
    cudaIpcMemHandle_t mem;
    cudaIpcEventHandle_t ev;
    if (auto e = cudaIpcGetMemHandle(&mem, buffer); e != cudaSuccess) {
      return Failed(e, "cudaIpcGetMemHandle");
    }
    if (auto e = cudaIpcGetEventHandle(&ev, event); e != cudaSuccess) {
      return Failed(e, "cudaIpcGetEventHandle");
    }
    ring->exports_.buffers.push_back(Bytes(mem));
    ring->exports_.events.push_back(Bytes(ev));
  }
  return ring;
}

absl::StatusOr<std::unique_ptr<IpcRing>> IpcRing::Import(Backend& b, const IpcExports& peer) {
  if (CudaStream(b) == nullptr) return absl::UnimplementedError("not a CUDA worker");
  if (peer.buffers.size() != peer.events.size() || peer.buffers.empty()) {
    return absl::InvalidArgumentError("IPC exports need one event per buffer");
  }
  std::unique_ptr<IpcRing> ring(new IpcRing(b, /*owner=*/false));
  ring->exports_ = peer;
  for (size_t i = 0; i < peer.buffers.size(); ++i) {
    cudaIpcMemHandle_t mem;
    cudaIpcEventHandle_t ev;
    if (!FromBytes(peer.buffers[i], &mem) || !FromBytes(peer.events[i], &ev)) {
      return absl::InvalidArgumentError("malformed CUDA IPC handle");
    }
    void* buffer = nullptr;
    cudaEvent_t event = nullptr;
    if (auto e = cudaIpcOpenMemHandle(&buffer, mem, cudaIpcMemLazyEnablePeerAccess);
        e != cudaSuccess) {
      return Failed(e, "cudaIpcOpenMemHandle");
    }
    ring->buffers_.push_back(buffer);
    if (auto e = cudaIpcOpenEventHandle(&event, ev); e != cudaSuccess) {
      return Failed(e, "cudaIpcOpenEventHandle");
    }
    ring->events_.push_back(event);
  }
  return ring;
}

IpcRing::~IpcRing() {
  cudaStreamSynchronize(StreamOf(backend_));  // nothing queued may still use the buffers
  for (void* p : buffers_) owner_ ? cudaFree(p) : cudaIpcCloseMemHandle(p);
  for (void* e : events_) cudaEventDestroy(static_cast<cudaEvent_t>(e));
}

void IpcRing::Receive(int slot, const Tensor& dst) {
  Require(!owner_ && slot >= 0 && slot < slots() && dst.dtype == DType::kF32, __LINE__);
  cudaStream_t stream = StreamOf(backend_);
  Check(cudaStreamWaitEvent(stream, static_cast<cudaEvent_t>(events_[size_t(slot)]), 0),
        "cudaStreamWaitEvent");
  NoteHandover(backend_, HandoverMark::kInputReady);
  Check(cudaMemcpyAsync(dst.data, buffers_[size_t(slot)], size_t(dst.numel()) * 4,
                        cudaMemcpyDeviceToDevice, stream),
        "cudaMemcpyAsync");
}

void IpcRing::Send(int slot, const Tensor& src) {
  const size_t bytes = size_t(src.numel()) * 4;
  Require(owner_ && slot >= 0 && slot < slots() && bytes <= bytes_, __LINE__);
  cudaStream_t stream = StreamOf(backend_);
  NoteHandover(backend_, HandoverMark::kOutputReady);
  Check(cudaMemcpyAsync(buffers_[size_t(slot)], src.data, bytes, cudaMemcpyDeviceToDevice, stream),
        "cudaMemcpyAsync");
  Check(cudaEventRecord(static_cast<cudaEvent_t>(events_[size_t(slot)]), stream),
        "cudaEventRecord");
  NoteHandover(backend_, HandoverMark::kSent);
}

}  // namespace lp

#else  // no CUDA backend in this build

namespace lp {

absl::StatusOr<std::unique_ptr<IpcRing>> IpcRing::Export(Backend&, int, size_t) {
  return absl::UnimplementedError("this build has no CUDA backend");
}
absl::StatusOr<std::unique_ptr<IpcRing>> IpcRing::Import(Backend&, const IpcExports&) {
  return absl::UnimplementedError("this build has no CUDA backend");
}
IpcRing::~IpcRing() = default;
void IpcRing::Receive(int, const Tensor&) { Require(false, __LINE__); }
void IpcRing::Send(int, const Tensor&) { Require(false, __LINE__); }

}  // namespace lp

#endif
