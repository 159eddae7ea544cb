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
// its end, once every line it holds has its full record. A file past a threshold is emptied
// when nothing in it is outstanding, or, under steady load, replaced by a new one and removed
// once its last line is done.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace airlock {

// What a journal line holds: enough to write the action and its `read` event as they would
// have been written before the call. An MCP read call's line leaves the effect to the
// caller to derive again from args (effect_hash is kept to check it); a full line (a
// command's read, `airlock exec`) holds the whole effect and the result as recorded.
struct JournaledRead {
  Action action;          // applied, risk read; unless full, result null and effect holds
                          // only effect_hash
  std::string principal;  // the `read` event's principal
  int64_t at_ms = 0;      // the `read` event's time
  bool full = false;      // the line held the effect and the result
};

// The journals hold every read's arguments, and what is in them is written into the chain
// at the next start: OK only for a directory of this user's that only this user can use.
Status CheckJournalDir(const std::string& dir);

// One line, without its newline. Cheap: no JSON tree is built; only the arguments (and,
// when full, the effect and the result) are dumped.
std::string JournalLine(const Action& a, const std::string& principal, int64_t at_ms,
                        bool full = false);
// InvalidArgument for anything that is not a whole line JournalLine could have written.
Result<JournaledRead> ParseJournalLine(std::string_view line);
// The whole lines of `data`, in order: one that does not parse, and a last one without its
// newline (cut short by a crash mid-write), are skipped and counted in *torn (if given).
std::vector<JournaledRead> ParseJournalLines(std::string_view data, int* torn);

class ReadJournal {
 public:
  // Creates and locks a new journal in `dir` (created 0700 if missing; refused if it is not a
  // directory of this user's that only this user can read and write).
  static Result<std::unique_ptr<ReadJournal>> Create(const std::string& dir);
  // Removes its files whose lines are all done; leaves the others for the next Recover.
  ~ReadJournal();
  ReadJournal(const ReadJournal&) = delete;
  ReadJournal& operator=(const ReadJournal&) = delete;

  // One write(2) of the line and its newline. Counts the line outstanding until Done, and
  // returns which of the session's files holds it (for Done).
  Result<uint64_t> Append(const Action& a, const std::string& principal, int64_t at_ms);
  // One line of `file` has its full record in the store, or was given up (it stays for
  // Recover). A file past kRotateAt is emptied once all its lines are done, or, if lines
  // keep coming, left for a new one and removed once its last line is done.
  void Done(uint64_t file, bool recorded);
  // The file new lines go to.
  std::string path();
  // A half-written line could not be cut back: nothing more is appended to this journal.
  bool broken();

  // The files of dead sessions in `dir`, in name order: each is locked and read, and the
  // whole lines of them all are handed to `ingest` at once, in order (one store commit for
  // them all); on OK the files are removed. If that fails, each file is handed over alone,
  // so that one bad file keeps only its own lines back. A torn last line (a crash
  // mid-write; power loss) is skipped and counted in *torn. A file that cannot be read or
  // ingested is left in place and reported in the returned status, after the others.
  static Status RecoverDead(const std::string& dir,
                            const std::function<Status(std::vector<JournaledRead>&)>& ingest,
                            int* torn = nullptr);

  static constexpr int64_t kRotateAt = 256 * 1024;
  static constexpr size_t kRecoverBatchFiles = 256;

 private:
  struct File {
    int fd = -1;
    std::string path;
    int64_t outstanding = 0;  // appended, not yet Done
    int64_t kept = 0;         // given up (Done(false)): never emptied or removed
    int64_t size = 0;         // bytes appended since the last emptying
  };
  explicit ReadJournal(std::string dir) : dir_(std::move(dir)) {}
  // A new file (created, locked, renamed into place) for the lines to come.
  Status OpenFile();    // REQUIRES(mu_)
  void Close(File& f);  // REQUIRES(mu_): removes it unless a line in it is not done

  const std::string dir_;
  std::mutex mu_;
  std::map<uint64_t, File> files_;  // GUARDED_BY(mu_)
  uint64_t current_ = 0;            // GUARDED_BY(mu_): the key of the file lines go to
  bool broken_ = false;             // GUARDED_BY(mu_)
};

}  // namespace airlock
