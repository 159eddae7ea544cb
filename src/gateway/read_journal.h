// ReadJournal: the record of an MCP read call that is on its way, written with one write(2).
//
// `airlock mcp stdio` answers a read call only once the call is recorded (fail closed). The
// full record (the action, its `read` event, its place in the chain) costs a store commit:
// ~80 us of CPU per call, spent while the upstream works, on machines where the client, the
// upstream and airlock share two CPUs. So the session first appends one line per call to a
// file of its own, before the request goes to the upstream, and makes the full record once
// the answer is out. The line is in the operating system when the request leaves, as the
// unsynced commit it replaces was: a crash or kill of airlock loses nothing.
//
// Each journal is DIR/<pid>-<random>.jnl, locked (flock) by its session for its whole life.
// A journal whose lock is free belongs to a session that died: Recover hands its lines to
// the store (those not recorded yet) and removes it. A session removes its own journal at
// its end, once every line it holds has its full record; it empties it earlier whenever
// nothing is outstanding and the file has grown past a threshold.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock {

// What a journal line holds: enough to write the action and its `read` event as they would
// have been written before the call (the effect is the caller's to derive again from
// args; effect_hash is kept to check it).
struct JournaledRead {
  Action action;          // applied, risk read, result null; effect holds only effect_hash
  std::string principal;  // the `read` event's principal
  int64_t at_ms = 0;      // the `read` event's time
};

// One line, without its newline. Cheap: no JSON tree is built; only the arguments are dumped.
std::string JournalLine(const Action& a, const std::string& principal, int64_t at_ms);
// InvalidArgument for anything that is not a whole line JournalLine could have written.
Result<JournaledRead> ParseJournalLine(std::string_view line);

class ReadJournal {
 public:
  // Creates and locks a new journal in `dir` (created 0700 if missing).
  static Result<std::unique_ptr<ReadJournal>> Create(const std::string& dir);
  // Removes the file if nothing is outstanding; else leaves it for the next Recover.
  ~ReadJournal();
  ReadJournal(const ReadJournal&) = delete;
  ReadJournal& operator=(const ReadJournal&) = delete;

  // One write(2) of the line and its newline. Counts the line outstanding until Done.
  Status Append(const Action& a, const std::string& principal, int64_t at_ms);
  // One appended line has its full record in the store (or was given up: it stays in the
  // file for Recover). Empties the file when nothing is outstanding and it is large.
  void Done(bool recorded);
  const std::string& path() const { return path_; }

  // The files of dead sessions in `dir`, oldest name first: each is locked, read and handed
  // to `ingest` with its whole lines in order; on OK the file is removed. A torn last line
  // (a crash mid-write; power loss) is skipped and counted in *torn. A file that cannot be
  // read or ingested is left in place and reported in the returned status, after the others.
  static Status RecoverDead(const std::string& dir,
                            const std::function<Status(std::vector<JournaledRead>&)>& ingest,
                            int* torn = nullptr);

  // Empties at this many bytes once nothing is outstanding.
  static constexpr int64_t kTruncateAt = 256 * 1024;

 private:
  ReadJournal(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  int fd_;
  std::string path_;
  std::mutex mu_;
  int64_t outstanding_ = 0;  // appended, not yet Done
  int64_t kept_ = 0;         // given up (Done(false)): the file is never emptied or removed
  int64_t size_ = 0;         // bytes appended since the last emptying
};

}  // namespace airlock
