// The host half of a CUDA IPC hop: a few words of shared memory through which a worker tells
// the next worker on its host "step S is queued in ring slot k" the moment it has queued it
// (recorded the slot's interprocess event), long before its GPU has run it. The next worker
// waits for that word, then queues a device-side wait on the event and its own work, so the
// coordinator can hand a step to the next stage as soon as it has sent it to this one, and no
// hop costs a round trip through the coordinator.
//
// The word is needed because a CUDA stream waits for an event's most recent record at the time
// of the wait: the wait must not be queued before the producer's record.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lp {

class Handover {
 public:
  // The shared-memory name of a worker instance's signal words (after the worker's name).
  static std::string Name(const std::string& worker, uint64_t instance_id);
  // The producer's side: creates the words (removed again when this object goes) and holds a
  // lock on them for as long as the process lives. Removes first what crashed instances of the
  // same worker left behind (words no live process holds).
  static absl::StatusOr<std::unique_ptr<Handover>> Create(const std::string& worker,
                                                          uint64_t instance_id, int slots);
  // The consumer's side: opens the words of the previous worker's instance.
  static absl::StatusOr<std::unique_ptr<Handover>> Open(const std::string& worker,
                                                        uint64_t instance_id, int slots);
  ~Handover();
  Handover(const Handover&) = delete;
  Handover& operator=(const Handover&) = delete;

  // Says that step `step_id`'s output is queued in `slot` (`ok`), or that the step failed and
  // nothing will be written (the consumer then fails it at once instead of waiting).
  void Post(int slot, uint64_t step_id, bool ok);
  // Waits until `slot` is posted for `step_id`. An error when it was posted as failed, when the
  // producer's process has ended (seen within kLivenessPeriod), or when nothing came within
  // `timeout` (the producer hangs).
  absl::Status Wait(int slot, uint64_t step_id, std::chrono::milliseconds timeout) const;
  static constexpr std::chrono::milliseconds kLivenessPeriod{100};

 private:
  Handover(std::string name, int fd, uint64_t* words, int slots, bool owner)
      : name_(std::move(name)), fd_(fd), words_(words), slots_(slots), owner_(owner) {}
  // Whether the producer's process still holds its lock on the words.
  bool ProducerAlive() const;

  std::string name_;
  int fd_;           // kept open: the producer's lock, the consumer's liveness probe
  uint64_t* words_;  // slots_ words: step_id << 1 | failed
  int slots_;
  bool owner_;
};

}  // namespace lp
