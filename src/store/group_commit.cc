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

Status GroupCommitQueue::PushAndWait(std::function<Status(StoreTxn&)> fn) {
  // Nobody to group with (the committer waits for work, the queue is empty, no other caller
  // is committing its own): this caller commits its closure itself, as LevelDB's first
  // writer does, and skips two thread hand-overs (to the committer and back). Whoever comes
  // meanwhile queues for the committer, which waits for the store's write lock.
  bool alone = false;
  {
    std::lock_guard lock(mu_);
    alone =
        !stopping_ && !leading_ && queue_.empty() && (committer_idle_ || !committer_.joinable());
    if (alone) leading_ = true;
  }
  if (!alone) return Push(std::move(fn)).get();
  struct EndLead {
    GroupCommitQueue* q;
    ~EndLead() {
      {
        std::lock_guard lock(q->mu_);
        q->leading_ = false;
      }
      q->cv_.notify_all();  // Stop may wait for this
    }
  } end_lead{this};
  Status outcome = Status::Internal("the store did not report the commit");
  std::vector<GroupedWork> batch;
  batch.push_back(GroupedWork{std::move(fn), [&outcome](Status st) { outcome = std::move(st); }});
  commit_batch_(batch);
  return outcome;
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
    fn = nullptr;  // before done, as a store does (GroupedWork)
    done(Status::FailedPrecondition("the store " + store_name_ + " is closing"));
  } else if (wake) {
    cv_.notify_one();
  }
}

void GroupCommitQueue::Stop() {
  std::thread committer;
  {
    std::unique_lock lock(mu_);
    stopping_ = true;
    cv_.wait(lock, [this] { return !leading_; });
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
