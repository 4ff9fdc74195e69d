// The host half of a CUDA IPC hop (see handover.h).
#include "worker/handover.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lp {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::StatusOr<uint64_t*> Map(int fd, int slots, const std::string& name) {
  void* p =
      ::mmap(nullptr, size_t(slots) * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  errno = err;
  if (p == MAP_FAILED) return Errno("mmap " + name);
  return static_cast<uint64_t*>(p);
}

// Shared between processes: only a lock-free atomic is one there.
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);

std::atomic_ref<uint64_t> Word(uint64_t* words, int slot) { return std::atomic_ref(words[slot]); }

}  // namespace

std::string Handover::Name(uint64_t instance_id) {
  return absl::StrFormat("/layerpipe-handover-%016x", instance_id);
}

absl::StatusOr<std::unique_ptr<Handover>> Handover::Create(uint64_t instance_id, int slots) {
  const std::string name = Name(instance_id);
  const int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return Errno("shm_open " + name);
  if (::ftruncate(fd, off_t(slots * sizeof(uint64_t))) != 0) {
    const absl::Status s = Errno("ftruncate " + name);
    ::close(fd);
    ::shm_unlink(name.c_str());
    return s;
  }
  auto words = Map(fd, slots, name);
  if (!words.ok()) {
    ::shm_unlink(name.c_str());
    return words.status();
  }
  return std::unique_ptr<Handover>(new Handover(name, *words, slots, /*owner=*/true));
}

absl::StatusOr<std::unique_ptr<Handover>> Handover::Open(uint64_t instance_id, int slots) {
  const std::string name = Name(instance_id);
  const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) return Errno("shm_open " + name);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size != off_t(slots * sizeof(uint64_t))) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(name, " does not hold ", slots, " words"));
  }
  auto words = Map(fd, slots, name);
  if (!words.ok()) return words.status();
  return std::unique_ptr<Handover>(new Handover(name, *words, slots, /*owner=*/false));
}

Handover::~Handover() {
  ::munmap(words_, size_t(slots_) * sizeof(uint64_t));
  if (owner_) ::shm_unlink(name_.c_str());
}

void Handover::Post(int slot, uint64_t step_id, bool ok) {
  Word(words_, slot).store(step_id << 1 | (ok ? 0 : 1), std::memory_order_release);
}

absl::Status Handover::Wait(int slot, uint64_t step_id, std::chrono::milliseconds timeout) const {
  if (slot < 0 || slot >= slots_) return absl::InvalidArgumentError("handover slot out of range");
  const auto word = Word(words_, slot);
  const auto start = std::chrono::steady_clock::now();
  // Spin briefly (a hop's producer is usually microseconds ahead), then sleep in short naps:
  // the consumer only has to queue its work before its GPU gets there.
  for (int spins = 0;; ++spins) {
    const uint64_t v = word.load(std::memory_order_acquire);
    if (v >> 1 == step_id) {
      if (v & 1) {
        return absl::AbortedError(absl::StrCat("the previous worker failed step ", step_id));
      }
      return absl::OkStatus();
    }
    if (spins < 2000) continue;
    if (std::chrono::steady_clock::now() - start > timeout) {
      return absl::UnavailableError(absl::StrCat("the previous worker did not hand over step ",
                                                 step_id, " within ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace lp
