#include "server/elastic_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace airlock::server {
namespace {

using namespace std::chrono_literals;

// A gate that tasks wait at until opened.
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  bool WaitForWaiters(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return waiting_ >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool open_ = false;
};

bool Eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 1000; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return f();
}

TEST(ElasticPoolTest, MakesNoThreadUntilWorkComes) {
  ElasticPool pool(64, 10s);
  EXPECT_EQ(pool.threads(), 0u);
  std::atomic<int> ran{0};
  pool.Post([&] { ++ran; });
  EXPECT_TRUE(Eventually([&] { return ran == 1; }));
  EXPECT_EQ(pool.threads(), 1u);
  // Sequential work reuses the idle thread.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Eventually([&] { return pool.idle() == 1; }));
    pool.Post([&] { ++ran; });
    ASSERT_TRUE(Eventually([&, want = i + 2] { return ran == want; }));
  }
  EXPECT_EQ(pool.threads(), 1u);
}

TEST(ElasticPoolTest, BlockedTasksEachGetAThreadAtOnceUpToTheMaximum) {
  ElasticPool pool(8, 10s);
  Gate gate;
  std::atomic<int> ran{0};
  for (int i = 0; i < 8; ++i)
    pool.Post([&] {
      gate.Wait();
      ++ran;
    });
  // All eight run together: each got a thread of its own.
  ASSERT_TRUE(gate.WaitForWaiters(8));
  EXPECT_EQ(pool.threads(), 8u);
  // A ninth waits for a free thread: no ninth thread.
  pool.Post([&] { ++ran; });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(pool.threads(), 8u);
  gate.Open();
  EXPECT_TRUE(Eventually([&] { return ran == 9; }));
}

TEST(ElasticPoolTest, IdleThreadsEndAfterTheLinger) {
  ElasticPool pool(8, 100ms);
  Gate gate;
  for (int i = 0; i < 4; ++i) pool.Post([&] { gate.Wait(); });
  ASSERT_TRUE(gate.WaitForWaiters(4));
  EXPECT_EQ(pool.threads(), 4u);
  gate.Open();
  EXPECT_TRUE(Eventually([&] { return pool.threads() == 0; }));
  // And new ones come for new work.
  std::atomic<bool> ran{false};
  pool.Post([&] { ran = true; });
  EXPECT_TRUE(Eventually([&] { return ran.load(); }));
}

TEST(ElasticPoolTest, JoinRunsEverythingPostedAndEndsEveryThread) {
  ElasticPool pool(2, 10s);
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) {
    pool.Post([&] {
      std::this_thread::sleep_for(1ms);
      ++ran;
    });
  }
  pool.Join();
  EXPECT_EQ(ran, 100);
  EXPECT_EQ(pool.threads(), 0u);
  pool.Join();  // idempotent
  auto held = std::make_shared<int>(1);
  pool.Post([&ran, held] { ++ran; });  // after Join: destroyed, not run (as asio's pool)
  EXPECT_EQ(ran, 100);
  EXPECT_EQ(held.use_count(), 1);
}

TEST(ElasticPoolTest, WorkPostedByRunningWorkDuringJoinRuns) {
  ElasticPool pool(1, 10s);
  std::atomic<int> ran{0};
  pool.Post([&] {
    std::this_thread::sleep_for(50ms);  // Join has begun
    pool.Post([&] { ++ran; });
    ++ran;
  });
  std::this_thread::sleep_for(10ms);
  pool.Join();
  EXPECT_EQ(ran, 2);
}

TEST(ElasticPoolTest, DestructionDropsWhatHasNotStarted) {
  std::atomic<int> ran{0};
  auto held = std::make_shared<int>(7);
  {
    // Destroyed in reverse: the pool first (it waits for the running task, which the opener
    // lets go), then the opener, then the gate.
    Gate gate;
    std::jthread opener;
    ElasticPool pool(1, 10s);
    pool.Post([&] {
      gate.Wait();
      ++ran;
    });
    ASSERT_TRUE(gate.WaitForWaiters(1));
    for (int i = 0; i < 5; ++i) pool.Post([&ran, held] { ++ran; });
    EXPECT_EQ(held.use_count(), 6);
    // Opened once the pool's destruction has surely begun (it begins right after this; a
    // second leaves room for a main thread that waits for a CPU meanwhile).
    opener = std::jthread([&gate] {
      std::this_thread::sleep_for(1s);
      gate.Open();
    });
  }
  EXPECT_EQ(ran, 1) << "the five queued tasks must not run";
  EXPECT_EQ(held.use_count(), 1) << "the dropped tasks were destroyed";
}

}  // namespace
}  // namespace airlock::server
