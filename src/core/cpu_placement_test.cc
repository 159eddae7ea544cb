// PlaceAwayFromCaller: the thread goes to every allowed CPU but the caller's, and stays where
// it is when there is no other.
#include "core/cpu_placement.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <future>
#include <thread>

namespace airlock {
namespace {

cpu_set_t AffinityOf(pthread_t t) {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(::pthread_getaffinity_np(t, sizeof(set), &set), 0);
  return set;
}

TEST(CpuPlacementTest, TheThreadGoesToTheOtherCpus) {
  cpu_set_t mine;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(mine), &mine), 0);
  if (CPU_COUNT(&mine) < 2) GTEST_SKIP() << "one CPU: nowhere else to go";
  std::promise<void> done;
  std::thread helper([f = done.get_future()]() mutable { f.wait(); });
  const int excluded = PlaceAwayFromCaller(helper.native_handle());
  cpu_set_t placed = AffinityOf(helper.native_handle());
  done.set_value();
  helper.join();
  ASSERT_GE(excluded, 0);
  EXPECT_TRUE(CPU_ISSET(excluded, &mine));
  EXPECT_FALSE(CPU_ISSET(excluded, &placed)) << "not on the caller's CPU";
  EXPECT_EQ(CPU_COUNT(&placed), CPU_COUNT(&mine) - 1) << "every other allowed CPU";
}

TEST(CpuPlacementTest, ACallerWithOneCpuLeavesTheThreadWhereItIs) {
  // A caller pinned to one CPU (its helper inherits that): there is no other to go to.
  std::thread caller([] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(::sched_getcpu(), &one);
    ASSERT_EQ(::sched_setaffinity(0, sizeof(one), &one), 0);
    std::promise<void> done;
    std::thread helper([f = done.get_future()]() mutable { f.wait(); });
    EXPECT_EQ(PlaceAwayFromCaller(helper.native_handle()), -1);
    cpu_set_t placed = AffinityOf(helper.native_handle());
    done.set_value();
    helper.join();
    EXPECT_TRUE(CPU_EQUAL(&placed, &one));
  });
  caller.join();
}

}  // namespace
}  // namespace airlock
