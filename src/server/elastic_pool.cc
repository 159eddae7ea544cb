#include "server/elastic_pool.h"

#include <algorithm>
#include <iostream>
#include <utility>

namespace airlock::server {

ElasticPool::ElasticPool(size_t max_threads, std::chrono::milliseconds linger)
    : max_threads_(std::max<size_t>(1, max_threads)), linger_(linger) {}

ElasticPool::~ElasticPool() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    joined_ = true;  // from here on Post drops
    dropped.swap(queue_);
  }
  dropped.clear();  // outside the lock: what they hold may post
  Join();
}

size_t ElasticPool::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return alive_;
}

size_t ElasticPool::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_;
}

void ElasticPool::SpawnNeeded(std::unique_lock<std::mutex>& lock) {
  // Each idle thread, and each one being made, takes one queued task.
  while (!joining_ && queue_.size() > idle_ + starting_ && alive_ < max_threads_) {
    ++alive_;
    ++starting_;
    lock.unlock();
    std::thread t;
    bool made = true;
    try {
      t = std::thread([this] { Loop(); });
    } catch (...) {  // std::system_error at a limit of threads, or bad_alloc
      made = false;
    }
    lock.lock();
    if (made) {
      threads_.push_back(std::move(t));
      continue;
    }
    --alive_;
    --starting_;
    if (!said_failure_) {
      said_failure_ = true;
      std::cerr << "airlock: cannot start a thread for queued work (" << queue_.size()
                << " waiting, " << alive_ << " threads); trying again as work finishes"
                << std::endl;
    }
    ended_cv_.notify_all();  // a Join waiting for alive_ to fall
    return;
  }
}

std::vector<std::thread> ElasticPool::TakeEndedLocked() {
  std::vector<std::thread> ended;
  for (const std::thread::id id : ended_) {
    auto it = std::find_if(threads_.begin(), threads_.end(),
                           [id](const std::thread& t) { return t.get_id() == id; });
    if (it == threads_.end()) continue;
    ended.push_back(std::move(*it));
    threads_.erase(it);
  }
  ended_.clear();
  return ended;
}

void ElasticPool::Post(std::function<void()> fn) {
  std::vector<std::thread> ended;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (joined_) {
      lock.unlock();
      fn = nullptr;  // destroyed outside the lock
      return;
    }
    queue_.push_back(std::move(fn));
    work_cv_.notify_one();
    if (joining_) ended_cv_.notify_all();  // a Join with no thread left runs it
    SpawnNeeded(lock);
    ended = TakeEndedLocked();
  }
  for (std::thread& t : ended) t.join();  // they have returned from Loop: at once
}

void ElasticPool::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  bool started = false;
  for (;;) {
    while (!queue_.empty()) {
      if (!started) {
        started = true;
        --starting_;
      }
      std::function<void()> fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      fn = nullptr;  // what it holds is released outside the lock
      lock.lock();
      SpawnNeeded(lock);  // work left behind by a failed start
    }
    if (!started) {
      started = true;
      --starting_;
    }
    if (joining_) break;
    ++idle_;
    const bool woke =
        work_cv_.wait_for(lock, linger_, [this] { return !queue_.empty() || joining_; });
    --idle_;
    if (!woke) break;  // idle for `linger`
  }
  --alive_;
  ended_.push_back(std::this_thread::get_id());
  ended_cv_.notify_all();
}

void ElasticPool::Join() {
  std::unique_lock<std::mutex> lock(mu_);
  joining_ = true;
  work_cv_.notify_all();
  for (;;) {
    if (alive_ == 0) {
      if (queue_.empty()) break;
      // Work with no thread to run it (none could be made, or posted as the last ended).
      std::function<void()> fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      fn = nullptr;
      lock.lock();
      continue;
    }
    ended_cv_.wait(lock);
  }
  joined_ = true;
  std::vector<std::thread> all = std::move(threads_);
  threads_.clear();
  ended_.clear();
  lock.unlock();
  for (std::thread& t : all) {
    if (t.joinable()) t.join();
  }
}

}  // namespace airlock::server
