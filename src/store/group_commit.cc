#include "store/group_commit.h"

#include <exception>
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
  GroupedWork work{std::move(fn), {}};
  std::future<Status> result = work.done.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      work.done.set_value(Status::FailedPrecondition("the store " + store_name_ + " is closing"));
      return result;
    }
    queue_.push_back(std::move(work));
    if (!committer_.joinable()) committer_ = std::thread([this] { Loop(); });
  }
  cv_.notify_one();
  return result;
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
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
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
