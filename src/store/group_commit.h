// What both stores share around group commit: closures run safely, and the queue that gathers
// other threads' closures into batches for one committer thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "store/store.h"

namespace airlock {

// Runs fn, turning an escaped exception into a Status: the closures come from other parts,
// and no exception may cross the store (nor kill the committer thread).
Status RunClosure(const std::function<Status(StoreTxn&)>& fn, StoreTxn& txn);

// Called once with a closure's outcome after its batch's commit, on the committer thread.
using GroupedDone = std::function<void(Status)>;

// A store drops `fn` before it calls `done`: what `fn` shares with `done` can then be handed
// on by `done` and released by whoever takes it (the server frees a read's record on the
// thread that answers, not on the committer, which every batch waits for).
struct GroupedWork {
  std::function<Status(StoreTxn&)> fn;
  GroupedDone done;
};

// The queue of TransactGrouped. The committer thread starts on first use (a short-lived CLI
// process that never groups starts none) and hands each batch, at most kMaxBatch closures in
// arrival order, to commit_batch, which must call every `done` in it once.
class GroupCommitQueue {
 public:
  static constexpr size_t kMaxBatch = 4096;

  GroupCommitQueue(std::string store_name,
                   std::function<void(std::vector<GroupedWork>&)> commit_batch)
      : store_name_(std::move(store_name)), commit_batch_(std::move(commit_batch)) {}
  // Stops (see Stop).
  ~GroupCommitQueue() { Stop(); }
  GroupCommitQueue(const GroupCommitQueue&) = delete;
  GroupCommitQueue& operator=(const GroupCommitQueue&) = delete;

  std::future<Status> Push(std::function<Status(StoreTxn&)> fn);
  // Push(fn).get(), except that when nobody else is committing or queued the caller commits
  // its closure itself, on its own thread.
  Status PushAndWait(std::function<Status(StoreTxn&)> fn);
  // The same without a future: `done` runs on the committer thread right after the commit
  // (or at once, on the caller's thread, when the queue is stopping). It must be quick and
  // must not throw: the next batch waits for it.
  void PushAsync(std::function<Status(StoreTxn&)> fn, GroupedDone done);

  // Refuses new work, lets the committer drain what is queued (every future resolves), and
  // joins it. A store calls this first in its destructor, while what commit_batch uses is
  // still there.
  void Stop();

 private:
  void Loop();

  const std::string store_name_;
  const std::function<void(std::vector<GroupedWork>&)> commit_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GroupedWork> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;          // GUARDED_BY(mu_)
  bool committer_idle_ = false;    // GUARDED_BY(mu_): waiting on cv_ for work
  bool leading_ = false;           // GUARDED_BY(mu_): a PushAndWait caller commits its own
  std::thread committer_;          // GUARDED_BY(mu_)
};

}  // namespace airlock
