#include "store/group_commit.h"

#include <exception>
#include <memory>
#include <utility>

namespace airlock {

Status RunClosure(const std::function<Status(StoreTxn&)>& fn, StoreTxn& txn) {
  try {
    return fn(txn);
  } catch (const std::exception& ex) {
    return Status::Internal(std::string("store transaction threw: ") + ex.what());
  } catch (...) {
    return Status::Internal("store transaction threw a non-standard exception");
  }
}

std::future<Status> GroupCommitQueue::Push(std::function<Status(StoreTxn&)> fn) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> result = promise->get_future();
  PushAsync(std::move(fn), [promise](Status st) { promise->set_value(std::move(st)); });
  return result;
}

void GroupCommitQueue::PushAsync(std::function<Status(StoreTxn&)> fn, GroupedDone done) {
  bool closing = false;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      closing = true;
    } else {
      queue_.push_back(GroupedWork{std::move(fn), std::move(done)});
      if (!committer_.joinable()) committer_ = std::thread([this] { Loop(); });
      // A committer busy with a batch takes this one when it comes back; only an idle one
      // needs waking (each wake-up is a futex call and, on 2 cores, a context switch).
      wake = committer_idle_;
    }
  }
  // Outside the lock: `done` may push again.
  if (closing) {
    done(Status::FailedPrecondition("the store " + store_name_ + " is closing"));
  } else if (wake) {
    cv_.notify_one();
  }
}

void GroupCommitQueue::Stop() {
  std::thread committer;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    committer = std::move(committer_);
  }
  cv_.notify_all();
  if (committer.joinable()) committer.join();
}

void GroupCommitQueue::Loop() {
  while (true) {
    std::vector<GroupedWork> batch;
    {
      std::unique_lock lock(mu_);
      committer_idle_ = true;
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      committer_idle_ = false;
      if (queue_.empty()) return;  // stopping, and drained
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    commit_batch_(batch);
  }
}

}  // namespace airlock
