// CommandJournal: the records of `airlock exec`'s reads, one synced line each, in one file
// that the store takes in by batches.
//
// A read's record in the store costs a commit and, at the command's close, a checkpoint:
// four syncs and ~1 ms of CPU, most of a CLI command's tail after its outcome. Here it is one
// line (JournalLine, full: the action with its effect and result summary, the `read`
// event's principal and time) written into STORE.journal/commands.log and fdatasync'ed
// before the command's output is shown: as durable as the commit it replaces.
//
// The file is made once, as zeros (kBytes), and synced with its name: a line written over
// the zeros changes no block map and no size, so its sync writes data only. Lines end with
// '\n'; the first NUL after the last one ends the used part. A writer or the taker holds
// flock(LOCK_EX) on the file while it works, so lines never interleave and none is taken
// twice. Taking lines in (Take) hands them to the store in one commit, then writes zeros
// over them, without a sync: zeros lost to a power cut bring back lines the store holds
// already, which the store skips by action id.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/read_journal.h"

namespace airlock {

class CommandJournal {
 public:
  // Opens DIR/commands.log, making DIR (0700) and the file (0600, kBytes of zeros, synced,
  // and DIR synced) the first time. Refused: a DIR that is not this user's alone, a file
  // that is a symlink or not a regular file of this user's.
  static Result<std::unique_ptr<CommandJournal>> Open(const std::string& dir);
  ~CommandJournal();
  CommandJournal(const CommandJournal&) = delete;
  CommandJournal& operator=(const CommandJournal&) = delete;

  // `line` (one line, no newline) written after the last whole line, and synced.
  Status Append(const std::string& line);

  // When DIR/commands.log holds at least `min_lines` lines (and one), hands its whole lines,
  // parsed, to `ingest` at once; on OK, writes zeros over them. A line that does not parse
  // (a power cut mid-write) is skipped and counted in *torn. A missing file or directory
  // holds nothing. Waits for a writer that holds the file.
  static Status Take(const std::string& dir,
                     const std::function<Status(std::vector<JournaledRead>&)>& ingest,
                     size_t min_lines = 0, int* torn = nullptr);

  static constexpr const char* kFileName = "commands.log";
  static constexpr size_t kBytes = 64 * 1024;

 private:
  CommandJournal(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  const int fd_;
  const std::string path_;
};

}  // namespace airlock
