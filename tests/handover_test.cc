// The shared-memory handover between neighbouring GPU workers (worker/handover.h): a post by
// one process is seen by another, a failed step fails the wait at once, a missing one times out.
#include "worker/handover.h"

#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "gtest/gtest.h"

namespace lp {
namespace {

using std::chrono::milliseconds;

uint64_t RandomInstance() {
  return std::random_device{}() * 0x100000000ull + std::random_device{}();
}

TEST(HandoverTest, PostIsSeenByTheOpenerAndFailuresFailAtOnce) {
  const uint64_t instance = RandomInstance();
  auto producer = Handover::Create(instance, 8);
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto consumer = Handover::Open(instance, 8);
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
  const uint64_t instance = RandomInstance();
  auto producer = Handover::Create(instance, 8);
  ASSERT_TRUE(producer.ok()) << producer.status();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto consumer = Handover::Open(instance, 8);
    if (!consumer.ok()) _exit(2);
    _exit((*consumer)->Wait(5, 7, milliseconds(10000)).ok() ? 0 : 1);
  }
  std::this_thread::sleep_for(milliseconds(100));
  (*producer)->Post(5, 7, true);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(HandoverTest, OpeningAGoneProducerFailsAndTheNameIsRemoved) {
  const uint64_t instance = RandomInstance();
  { ASSERT_TRUE(Handover::Create(instance, 8).ok()); }
  const auto gone = Handover::Open(instance, 8);
  EXPECT_FALSE(gone.ok());
  auto again = Handover::Create(instance, 8);
  EXPECT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(Handover::Open(instance, 4).ok());  // the wrong size
}

}  // namespace
}  // namespace lp
