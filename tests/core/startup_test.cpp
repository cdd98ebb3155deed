#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "headlab/core/startup.h"

namespace headlab {

TEST(StartupTest, SetsIntraOpThreadCount) {
  EXPECT_EQ(configureThreads(1), 1);
  EXPECT_EQ(at::get_num_threads(), 1);
  int n = configureThreads();
  EXPECT_GE(n, 1);
  EXPECT_EQ(at::get_num_threads(), n);
}

TEST(StartupTest, BlasCheckWarnsBelowThresholdNamingThePackage) {
  BlasCheck slow = checkBlas(1e12);  // no machine reaches a petaflop: forces the warning path
  EXPECT_FALSE(slow.ok);
  EXPECT_GT(slow.gflops, 0.0);
  EXPECT_NE(slow.message.find("libopenblas0-openmp"), std::string::npos) << slow.message;
  EXPECT_EQ(slow.message.find('\n'), std::string::npos);
}

TEST(StartupTest, BlasCheckPassesAtZeroThreshold) {
  BlasCheck b = checkBlas(0.0);
  EXPECT_TRUE(b.ok);
  EXPECT_NE(runtimeSummary(2, b).find("threads 2"), std::string::npos);
}

}  // namespace headlab
