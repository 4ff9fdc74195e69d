// The shared-memory handover between neighbouring GPU workers (worker/handover.h): a post by
// one process is seen by another, a failed step fails the wait at once, a missing one times out,
// a producer that dies is seen within the liveness period, and what a crashed producer left in
// /dev/shm is removed by the next instance of the same worker.
#include "worker/handover.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "gtest/gtest.h"

namespace lp {
namespace {

using std::chrono::milliseconds;

uint64_t RandomInstance() {
  return std::random_device{}() * 0x100000000ull + std::random_device{}();
}

// A worker name of one test's own (tests run in parallel processes); taken before any fork so
// that the children use the same. A '/' is replaced in the file's name.
std::string NewWorkerName() { return "test/" + std::to_string(RandomInstance()); }

// A forked child, killed and reaped however the test ends (a failed assertion returns early).
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  // Waits for the child to exit; its wait status.
  int Reap() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    return status;
  }

 private:
  pid_t pid_;
};

TEST(HandoverTest, PostIsSeenByTheOpenerAndFailuresFailAtOnce) {
  const std::string worker = NewWorkerName();
  const uint64_t instance = RandomInstance();
  auto producer = Handover::Create(worker, instance, 8);
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto consumer = Handover::Open(worker, instance, 8);
  ASSERT_TRUE(consumer.ok()) << consumer.status();

  (*producer)->Post(3, 41, true);
  EXPECT_TRUE((*consumer)->Wait(3, 41, milliseconds(100)).ok());
  // Another slot, or another step in the same slot, has not been posted.
  EXPECT_EQ((*consumer)->Wait(2, 41, milliseconds(50)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*consumer)->Wait(3, 42, milliseconds(50)).code(), absl::StatusCode::kUnavailable);

  (*producer)->Post(3, 42, false);
  const absl::Status failed = (*consumer)->Wait(3, 42, milliseconds(5000));
  EXPECT_EQ(failed.code(), absl::StatusCode::kAborted) << failed;
  EXPECT_EQ((*consumer)->Wait(8, 1, milliseconds(1)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(HandoverTest, AWaitingConsumerWakesWhenAnotherProcessPosts) {
  const std::string worker = NewWorkerName();
  const uint64_t instance = RandomInstance();
  auto producer = Handover::Create(worker, instance, 8);
  ASSERT_TRUE(producer.ok()) << producer.status();
  Child child(fork());
  ASSERT_GE(child.pid(), 0);
  if (child.pid() == 0) {
    auto consumer = Handover::Open(worker, instance, 8);
    if (!consumer.ok()) _exit(2);
    _exit((*consumer)->Wait(5, 7, milliseconds(10000)).ok() ? 0 : 1);
  }
  std::this_thread::sleep_for(milliseconds(100));
  (*producer)->Post(5, 7, true);
  const int status = child.Reap();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(HandoverTest, OpeningAGoneProducerFailsAndTheNameIsRemoved) {
  const std::string worker = NewWorkerName();
  const uint64_t instance = RandomInstance();
  { ASSERT_TRUE(Handover::Create(worker, instance, 8).ok()); }
  const auto gone = Handover::Open(worker, instance, 8);
  EXPECT_FALSE(gone.ok());
  auto again = Handover::Create(worker, instance, 8);
  EXPECT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(Handover::Open(worker, instance, 4).ok());  // the wrong size
}

TEST(HandoverTest, AProducerThatDiesIsSeenWithinTheLivenessPeriod) {
  const std::string worker = NewWorkerName();
  const uint64_t instance = RandomInstance();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  Child child(fork());
  ASSERT_GE(child.pid(), 0);
  if (child.pid() == 0) {  // the producer: creates its words, says so, then waits to be killed
    auto producer = Handover::Create(worker, instance, 8);
    const char c = producer.ok() ? 1 : 0;
    if (write(ready[1], &c, 1) != 1) _exit(2);
    pause();
    _exit(0);
  }
  ::close(ready[1]);  // a child that dies before it writes ends the read
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 1);
  auto consumer = Handover::Open(worker, instance, 8);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(200));
    ::kill(child.pid(), SIGKILL);
  });
  const auto start = std::chrono::steady_clock::now();
  const absl::Status s = (*consumer)->Wait(1, 5, milliseconds(5000));
  const auto waited = std::chrono::steady_clock::now() - start;
  killer.join();
  child.Reap();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("ended"), std::string::npos) << s;
  EXPECT_LT(waited, milliseconds(1000)) << "not the 5 s timeout";

  // What the killed producer left is there until the worker's next instance starts.
  const std::string left = "/dev/shm" + Handover::Name(worker, instance);
  EXPECT_TRUE(std::filesystem::exists(left));
  EXPECT_FALSE(Handover::Open(worker, instance, 8).ok()) << "its worker has ended";
  const uint64_t next_instance = RandomInstance();
  auto next = Handover::Create(worker, next_instance, 8);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_FALSE(std::filesystem::exists(left));
  // A live instance's words are not touched by another's start.
  auto other = Handover::Create(worker, RandomInstance(), 8);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_TRUE(std::filesystem::exists("/dev/shm" + Handover::Name(worker, next_instance)));
  EXPECT_TRUE(Handover::Open(worker, next_instance, 8).ok());
  ::close(ready[0]);
}

}  // namespace
}  // namespace lp
