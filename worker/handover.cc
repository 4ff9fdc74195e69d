// The host half of a CUDA IPC hop (see handover.h). The words live in /dev/shm (what shm_open
// uses on Linux). The producer holds an exclusive flock on them for its lifetime: the kernel
// drops it when the process ends, however it ends, which is how the consumer and the next
// instance of the same worker tell a dead producer's words from a live one's.
#include "worker/handover.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lp {
namespace {

constexpr char kShmDir[] = "/dev/shm";

absl::Status Errno(const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::StatusOr<uint64_t*> Map(int fd, int slots, const std::string& name) {
  void* p =
      ::mmap(nullptr, size_t(slots) * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return Errno("mmap " + name);
  return static_cast<uint64_t*>(p);
}

// Shared between processes: only a lock-free atomic is one there.
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);

std::atomic_ref<uint64_t> Word(uint64_t* words, int slot) { return std::atomic_ref(words[slot]); }

// The names of a worker's words: "layerpipe-handover-<worker>-" and 16 hex digits. A worker
// name may hold anything: what a file name cannot is replaced.
std::string Prefix(const std::string& worker) {
  std::string safe = worker;
  for (char& c : safe) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return absl::StrCat("layerpipe-handover-", safe, "-");
}

// Removes words of `worker` that no live process holds (a crashed instance's).
void RemoveStale(const std::string& worker) {
  const std::string prefix = Prefix(worker);
  DIR* dir = ::opendir(kShmDir);
  if (dir == nullptr) return;
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (!absl::StartsWith(name, prefix) || name.size() != prefix.size() + 16) continue;
    const std::string path = absl::StrCat(kShmDir, "/", name);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) ::unlink(path.c_str());  // nobody holds it
    ::close(fd);
  }
  ::closedir(dir);
}

}  // namespace

std::string Handover::Name(const std::string& worker, uint64_t instance_id) {
  return absl::StrFormat("/%s%016x", Prefix(worker), instance_id);
}

absl::StatusOr<std::unique_ptr<Handover>> Handover::Create(const std::string& worker,
                                                           uint64_t instance_id, int slots) {
  RemoveStale(worker);
  const std::string name = Name(worker, instance_id);
  const std::string path = kShmDir + name;
  // Locked before it has a name, so that nobody ever sees it unlocked: an unnamed file, then
  // linked under its name.
  const int fd = ::open(kShmDir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return Errno(absl::StrCat("open ", kShmDir));
  auto fail = [&](const std::string& what) {
    const absl::Status s = Errno(what);
    ::close(fd);
    return s;
  };
  if (::flock(fd, LOCK_EX) != 0) return fail("flock " + name);
  if (::ftruncate(fd, off_t(slots * sizeof(uint64_t))) != 0) return fail("ftruncate " + name);
  const std::string self = absl::StrCat("/proc/self/fd/", fd);
  if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    return fail("link " + path);
  }
  auto words = Map(fd, slots, name);
  if (!words.ok()) {
    ::unlink(path.c_str());
    ::close(fd);
    return words.status();
  }
  return std::unique_ptr<Handover>(new Handover(name, fd, *words, slots, /*owner=*/true));
}

absl::StatusOr<std::unique_ptr<Handover>> Handover::Open(const std::string& worker,
                                                         uint64_t instance_id, int slots) {
  const std::string name = Name(worker, instance_id);
  const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) return Errno("shm_open " + name);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size != off_t(slots * sizeof(uint64_t))) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(name, " does not hold ", slots, " words"));
  }
  auto words = Map(fd, slots, name);
  if (!words.ok()) {
    ::close(fd);
    return words.status();
  }
  auto h = std::unique_ptr<Handover>(new Handover(name, fd, *words, slots, /*owner=*/false));
  if (!h->ProducerAlive()) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": its worker has ended"));
  }
  return h;
}

Handover::~Handover() {
  ::munmap(words_, size_t(slots_) * sizeof(uint64_t));
  if (owner_) ::shm_unlink(name_.c_str());
  ::close(fd_);
}

bool Handover::ProducerAlive() const {
  if (::flock(fd_, LOCK_SH | LOCK_NB) != 0) return true;  // the producer holds it
  ::flock(fd_, LOCK_UN);
  return false;
}

void Handover::Post(int slot, uint64_t step_id, bool ok) {
  Word(words_, slot).store(step_id << 1 | (ok ? 0 : 1), std::memory_order_release);
}

absl::Status Handover::Wait(int slot, uint64_t step_id, std::chrono::milliseconds timeout) const {
  if (slot < 0 || slot >= slots_) return absl::InvalidArgumentError("handover slot out of range");
  const auto word = Word(words_, slot);
  const auto start = std::chrono::steady_clock::now();
  auto next_probe = start + kLivenessPeriod;
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
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_probe) {
      if (!ProducerAlive()) {
        return absl::UnavailableError(
            absl::StrCat("the previous worker ended before handing over step ", step_id));
      }
      next_probe = now + kLivenessPeriod;
    }
    if (now - start > timeout) {
      return absl::UnavailableError(absl::StrCat("the previous worker did not hand over step ",
                                                 step_id, " within ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace lp
