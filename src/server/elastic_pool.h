// A pool of threads made when work comes and none is idle, up to a maximum, and ended after
// they have been idle a while.
//
// airlock serve gives every wait and event stream it admits a thread at once (up to 192), and
// runs gateway calls on up to 64 more. Made up front, those ~260 threads made every fork of
// the server cost ~2 ms (each thread's stack is two mappings that fork copies), and a shell
// sandbox's supervisor is a fork of the server. Made on demand, an idle server has a few.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace airlock::server {

class ElasticPool {
 public:
  // At most `max_threads` (at least 1) run at once; a thread idle for `linger` ends.
  ElasticPool(size_t max_threads, std::chrono::milliseconds linger);
  // Like asio's thread_pool: what has not started is destroyed without running, and what
  // runs is waited for.
  ~ElasticPool();
  ElasticPool(const ElasticPool&) = delete;
  ElasticPool& operator=(const ElasticPool&) = delete;

  // Runs `fn` on an idle thread, else on a new one, else (at the maximum) when a thread is
  // free. While Join runs, `fn` still runs; once Join has returned, or the pool is being
  // destroyed, `fn` is destroyed without running (as asio's thread_pool does after join).
  // If no thread can be made (at a system limit), `fn` waits for a thread that can be: each
  // Post and each finished task tries again, and the failure is said once on stderr.
  void Post(std::function<void()> fn);

  // Waits until everything posted has run and every thread has ended. Idempotent.
  void Join();

  // Threads alive now, and of them those waiting for work (for tests).
  size_t threads() const;
  size_t idle() const;

 private:
  void Loop();
  // With mu_ held in `lock`: starts the threads the queue needs, releasing the lock while
  // each is created (creating a thread maps its stack, which waits for a fork in progress).
  void SpawnNeeded(std::unique_lock<std::mutex>& lock);
  std::vector<std::thread> TakeEndedLocked();

  const size_t max_threads_;
  const std::chrono::milliseconds linger_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;          // work queued, or joining
  std::condition_variable ended_cv_;         // a thread ended
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;         // GUARDED_BY(mu_)
  std::vector<std::thread::id> ended_;       // GUARDED_BY(mu_): returned from Loop
  size_t alive_ = 0;                         // GUARDED_BY(mu_): made, or being made, and not ended
  size_t starting_ = 0;        // GUARDED_BY(mu_): being made, or not yet in Loop's first wait
  size_t idle_ = 0;            // GUARDED_BY(mu_): waiting for work
  bool joining_ = false;       // GUARDED_BY(mu_)
  bool joined_ = false;        // GUARDED_BY(mu_)
  bool said_failure_ = false;  // GUARDED_BY(mu_)
};

}  // namespace airlock::server
