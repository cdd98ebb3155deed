// runIsolated: a crash, a hang or an exception in the child is reported to the parent, which
// carries on; a normal return brings the child's output back whole.
#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include "traces/isolated_call.h"

namespace headlab {

TEST(IsolatedCallTest, ReturnsTheChildsOutputWhole) {
  std::string big(300000, 'x');  // larger than a pipe's buffer
  big[12345] = 0;
  IsolatedResult r = runIsolated([&] { return big; });
  ASSERT_TRUE(r.ok) << r.failure;
  EXPECT_EQ(r.output, big);
}

TEST(IsolatedCallTest, ACrashInTheChildIsAFailureNotACrash) {
  IsolatedResult r = runIsolated([]() -> std::string {
    std::raise(SIGSEGV);
    return "unreachable";
  });
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.threw);
  EXPECT_EQ(r.failure, "killed by signal 11");
}

TEST(IsolatedCallTest, AnExceptionComesBackAsItsMessage) {
  IsolatedResult r = runIsolated([]() -> std::string { throw std::runtime_error("bad attribute 'axes'"); });
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.threw);
  EXPECT_EQ(r.failure, "bad attribute 'axes'");
}

TEST(IsolatedCallTest, AHangIsKilledAtTheDeadline) {
  IsolatedResult r = runIsolated([]() -> std::string {
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return "late";
  }, 1);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failure, "timed out after 1 s");
}

}  // namespace headlab
