// The device half of a CUDA IPC hop between the worker processes of one host (handover.h is
// the host half): each worker exports a ring of activation buffers with an interprocess event
// each, once at load; the next worker opens them once (an open costs about a millisecond:
// never per step). A hop is then a device-side wait on the previous worker's event and a
// device-to-device copy on the backend's stream: no host round trip, no host memory. The engine
// knows nothing of it: the ring copies into and out of the buffer that Slice::Forward hands
// to KeepOnBackend's callbacks.
//
// Ring slots are reused only after the micro-batch that last used them has left the pipeline
// (the coordinator keeps no more micro-batches in flight than there are slots), so a buffer is
// never overwritten while the next worker may still read it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"

namespace lp {

// A ring's buffers and events as opaque CUDA IPC handles (bytes), as the handshake carries them.
struct IpcExports {
  std::vector<std::string> buffers;
  std::vector<std::string> events;
};

class IpcRing {
 public:
  // This worker's ring: `count` buffers of `bytes` on CUDA backend `b`. An error when `b` is not
  // a CUDA backend (or this build has none) or the device refuses.
  static absl::StatusOr<std::unique_ptr<IpcRing>> Export(Backend& b, int count, size_t bytes);
  // The previous worker's ring, opened on `b`.
  static absl::StatusOr<std::unique_ptr<IpcRing>> Import(Backend& b, const IpcExports& peer);
  // Waits for the work queued on the ring (an imported ring may still be read), then frees it.
  ~IpcRing();
  IpcRing(const IpcRing&) = delete;
  IpcRing& operator=(const IpcRing&) = delete;

  const IpcExports& exports() const { return exports_; }
  int slots() const { return int(buffers_.size()); }

  // An imported ring: queues a wait for the event of `slot`, then a copy of its buffer into
  // `dst` (float32 on the same backend).
  void Receive(int slot, const Tensor& dst);
  // An exported ring: queues a copy of `src` into buffer `slot`, then records its event.
  void Send(int slot, const Tensor& src);

 private:
  IpcRing(Backend& b, bool owner) : backend_(b), owner_(owner) {}
  void Free();

  Backend& backend_;
  const bool owner_;  // exported (allocated here) or imported (opened here)
  IpcExports exports_;
  size_t bytes_ = 0;
  std::vector<void*> buffers_;
  std::vector<void*> events_;  // cudaEvent_t
};

}  // namespace lp
