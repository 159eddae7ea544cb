#include "gateway/read_journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "core/json.h"

namespace airlock {
namespace {

constexpr int kVersion = 1;
constexpr size_t kMaxLine = 64 << 20;  // a line longer than any message a session accepts

void AppendString(std::string& out, std::string_view key, const std::string& value) {
  out += ",\"";
  out += key;
  out += "\":";
  // Invalid UTF-8 (which the parsed messages never hold) is replaced, never thrown on.
  out += Json(value).dump(-1, ' ', false, Json::error_handler_t::replace);
}

void AppendInt(std::string& out, std::string_view key, int64_t value) {
  out += ",\"";
  out += key;
  out += "\":";
  out += std::to_string(value);
}

Status ErrnoStatus(const std::string& what) {
  return Status::IoError(what + ": " + std::strerror(errno));
}

// write(2) until done or an error: a short write on a regular file is rare (a full disk) but
// must not leave half a line followed by the next one.
Status WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return ErrnoStatus("write");
    if (w == 0) return Status::IoError("write: nothing written");
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Result<std::string> ReadAll(int fd, const std::string& path) {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read " + path);
    }
    if (r == 0) break;
    data.append(buf, static_cast<size_t>(r));
  }
  return data;
}

const Json* Field(const Json& j, const char* key, Json::value_t type) {
  auto it = j.find(key);
  if (it == j.end()) return nullptr;
  if (it->type() != type) {
    // An integer field written as a non-negative number parses as unsigned.
    if (type == Json::value_t::number_integer && it->is_number_unsigned()) return &*it;
    return nullptr;
  }
  return &*it;
}

}  // namespace

std::string JournalLine(const Action& a, const std::string& principal, int64_t at_ms, bool full) {
  std::string args = a.args.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string line;
  line.reserve(args.size() + 256);
  line += "{\"v\":";
  line += std::to_string(kVersion);
  AppendString(line, "id", a.id);
  AppendInt(line, "created_ms", a.created_ms);
  AppendInt(line, "at_ms", at_ms);
  AppendString(line, "principal", principal);
  AppendString(line, "agent", a.agent);
  AppendString(line, "target", a.target);
  AppendString(line, "kind", a.kind);
  AppendString(line, "status", ActionStatusName(a.status));
  AppendString(line, "risk", RiskName(a.risk));
  AppendInt(line, "quorum", a.quorum);
  line += ",\"reasons\":[";
  for (size_t i = 0; i < a.reasons.size(); ++i) {
    if (i > 0) line += ',';
    line += Json(a.reasons[i]).dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  line += ']';
  AppendString(line, "effect_hash", a.effect.effect_hash);
  line += ",\"args\":";
  line += args;
  if (full) {
    line += ",\"effect\":";
    line += EffectToJson(a.effect).dump(-1, ' ', false, Json::error_handler_t::replace);
    line += ",\"result\":";
    line += a.result.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  line += '}';
  return line;
}

Result<JournaledRead> ParseJournalLine(std::string_view line) {
  if (line.size() > kMaxLine) return Status::InvalidArgument("journal line too long");
  Result<Json> parsed = ParseJson(line);
  if (!parsed.ok()) return Status::InvalidArgument("journal line: " + parsed.status().message());
  const Json& j = *parsed;
  if (!j.is_object()) return Status::InvalidArgument("journal line: not an object");
  const Json* v = Field(j, "v", Json::value_t::number_integer);
  if (v == nullptr || v->get<int64_t>() != kVersion) {
    return Status::InvalidArgument("journal line: unknown version");
  }
  using T = Json::value_t;
  JournaledRead r;
  Action& a = r.action;
  struct Str {
    const char* key;
    std::string* out;
  };
  std::string status, risk;
  for (const Str& s : {Str{"id", &a.id}, Str{"principal", &r.principal}, Str{"agent", &a.agent},
                       Str{"target", &a.target}, Str{"kind", &a.kind}, Str{"status", &status},
                       Str{"risk", &risk}, Str{"effect_hash", &a.effect.effect_hash}}) {
    const Json* f = Field(j, s.key, T::string);
    if (f == nullptr) return Status::InvalidArgument(std::string("journal line: no ") + s.key);
    *s.out = f->get<std::string>();
  }
  const Json* created = Field(j, "created_ms", T::number_integer);
  const Json* at = Field(j, "at_ms", T::number_integer);
  const Json* quorum = Field(j, "quorum", T::number_integer);
  const Json* reasons = Field(j, "reasons", T::array);
  const Json* args = Field(j, "args", T::object);
  if (created == nullptr || at == nullptr || quorum == nullptr || reasons == nullptr ||
      args == nullptr) {
    return Status::InvalidArgument("journal line: a field is missing or of the wrong type");
  }
  a.created_ms = a.updated_ms = created->get<int64_t>();
  r.at_ms = at->get<int64_t>();
  const int64_t q = quorum->get<int64_t>();
  if (a.id.empty() || a.created_ms < 0 || r.at_ms < 0 || q < 0 || q > 1000) {
    return Status::InvalidArgument("journal line: a value is out of range");
  }
  a.quorum = static_cast<int>(q);
  for (const Json& reason : *reasons) {
    if (!reason.is_string()) return Status::InvalidArgument("journal line: a reason not a string");
    a.reasons.push_back(reason.get<std::string>());
  }
  auto parsed_status = ParseActionStatus(status);
  auto parsed_risk = ParseRisk(risk);
  if (!parsed_status || !parsed_risk) {
    return Status::InvalidArgument("journal line: unknown status or risk");
  }
  a.status = *parsed_status;
  a.risk = *parsed_risk;
  a.args = *args;
  a.result = nullptr;
  a.reversible = false;
  // A full line: the effect and the result as they are recorded. Both or neither.
  const auto effect = j.find("effect");
  const auto result = j.find("result");
  if ((effect == j.end()) != (result == j.end())) {
    return Status::InvalidArgument("journal line: an effect without a result, or the reverse");
  }
  if (effect != j.end()) {
    if (!effect->is_object()) return Status::InvalidArgument("journal line: effect not an object");
    Result<Effect> e = EffectFromJson(*effect);
    if (!e.ok()) return Status::InvalidArgument("journal line: effect: " + e.status().message());
    if (e->effect_hash != a.effect.effect_hash) {
      return Status::InvalidArgument("journal line: the effect's hash is not effect_hash");
    }
    a.effect = std::move(*e);
    a.result = *result;
    r.full = true;
  }
  return r;
}

std::vector<JournaledRead> ParseJournalLines(std::string_view data, int* torn) {
  std::vector<JournaledRead> reads;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) {
      // The last line, without its newline: cut short by a crash mid-write.
      if (torn != nullptr) ++*torn;
      break;
    }
    Result<JournaledRead> r = ParseJournalLine(data.substr(pos, nl - pos));
    if (r.ok()) {
      reads.push_back(std::move(*r));
    } else if (torn != nullptr) {
      ++*torn;  // a line a power cut left half on disk: nothing to recover from it
    }
    pos = nl + 1;
  }
  return reads;
}

// A directory someone else could read or write is not used.
Status CheckJournalDir(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return ErrnoStatus("stat " + dir);
  if (!S_ISDIR(st.st_mode)) return Status::FailedPrecondition(dir + " is not a directory");
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    return Status::PermissionDenied(dir + " must be a directory of this user's with mode 0700");
  }
  return Status::Ok();
}

Result<std::unique_ptr<ReadJournal>> ReadJournal::Create(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus("mkdir " + dir);
  RETURN_IF_ERROR(CheckJournalDir(dir));
  std::unique_ptr<ReadJournal> j(new ReadJournal(dir));
  std::lock_guard<std::mutex> lock(j->mu_);
  RETURN_IF_ERROR(j->OpenFile());
  return j;
}

Status ReadJournal::OpenFile() {
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    char name[64];
    std::snprintf(name, sizeof name, "%d-%08x%08x", static_cast<int>(::getpid()), rd(), rd());
    // Created under a name Recover ignores, locked, then renamed: Recover never sees a
    // journal whose lock is free because its session has not taken it yet.
    const std::string tmp = dir_ + "/" + name + ".new";
    const std::string path = dir_ + "/" + name + ".jnl";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return ErrnoStatus("create " + tmp);
    }
    const bool locked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (!locked || ::rename(tmp.c_str(), path.c_str()) != 0) {
      Status st = ErrnoStatus((locked ? "rename " : "lock ") + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return st;
    }
    File f;
    f.fd = fd;
    f.path = path;
    const uint64_t key = files_.empty() ? 1 : files_.rbegin()->first + 1;
    files_[key] = std::move(f);
    current_ = key;
    return Status::Ok();
  }
  return Status::Internal("could not create a journal in " + dir_);
}

void ReadJournal::Close(File& f) {
  if (f.outstanding == 0 && f.kept == 0) ::unlink(f.path.c_str());
  ::close(f.fd);  // the lock goes: a file kept is the next Recover's
  f.fd = -1;
}

ReadJournal::~ReadJournal() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, f] : files_) Close(f);
}

std::string ReadJournal::path() {
  std::lock_guard<std::mutex> lock(mu_);
  return files_.at(current_).path;
}

bool ReadJournal::broken() {
  std::lock_guard<std::mutex> lock(mu_);
  return broken_;
}

Result<uint64_t> ReadJournal::Append(const Action& a, const std::string& principal, int64_t at_ms) {
  std::string line = JournalLine(a, principal, at_ms);
  line += '\n';
  std::lock_guard<std::mutex> lock(mu_);
  if (broken_) return Status::FailedPrecondition("the read journal in " + dir_ + " is broken");
  if (files_.at(current_).size >= kRotateAt) {
    // Lines keep coming and some are always outstanding: the next ones go to a new file, and
    // this one goes once its last line is done (Done). If none can be made, this one grows.
    const uint64_t old = current_;
    if (OpenFile().ok() && files_.at(old).outstanding == 0) {
      Close(files_.at(old));
      files_.erase(old);
    }
  }
  File& f = files_.at(current_);
  // A line half written (a full disk) would join the next one into garbage: the file is cut
  // back to where it was, and the call is not made. If it cannot be cut back, nothing more is
  // appended (the caller records its calls another way), and the file is kept.
  Status st = WriteAll(f.fd, line.data(), line.size());
  if (!st.ok()) {
    if (::ftruncate(f.fd, f.size) != 0) {
      broken_ = true;
      f.kept = std::max<int64_t>(f.kept, 1);
    }
    return st.Annotate("the read journal " + f.path);
  }
  f.size += static_cast<int64_t>(line.size());
  ++f.outstanding;
  return current_;
}

void ReadJournal::Done(uint64_t file, bool recorded) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(file);
  if (it == files_.end()) return;
  File& f = it->second;
  if (f.outstanding > 0) --f.outstanding;
  if (!recorded) ++f.kept;
  if (f.outstanding > 0) return;
  if (file != current_) {
    Close(f);
    files_.erase(it);
  } else if (f.kept == 0 && f.size >= kRotateAt && ::ftruncate(f.fd, 0) == 0) {
    f.size = 0;
  }
}

Status ReadJournal::RecoverDead(const std::string& dir,
                                const std::function<Status(std::vector<JournaledRead>&)>& ingest,
                                int* torn) {
  if (torn != nullptr) *torn = 0;
  std::vector<std::string> names;
  {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 && errno == ENOENT) return Status::Ok();
    RETURN_IF_ERROR(CheckJournalDir(dir));
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return Status::Ok();
      return ErrnoStatus("open " + dir);
    }
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".jnl") == 0) names.push_back(n);
    }
    ::closedir(d);
  }
  if (names.empty()) return Status::Ok();
  std::sort(names.begin(), names.end());
  // Every dead file of a batch, locked (and so kept from another recovery) until it is
  // removed. A batch is bounded, so that its open files stay well inside RLIMIT_NOFILE.
  struct Dead {
    int fd = -1;
    std::string path;
    std::vector<JournaledRead> reads;
  };
  Status first_error;
  for (size_t from = 0; from < names.size(); from += kRecoverBatchFiles) {
    std::vector<Dead> dead;
    for (size_t i = from; i < std::min(names.size(), from + kRecoverBatchFiles); ++i) {
      const std::string path = dir + "/" + names[i];
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) {
        if (errno != ENOENT && first_error.ok()) first_error = ErrnoStatus("open " + path);
        continue;
      }
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        // EWOULDBLOCK: a live session's. Anything else is reported, and the file left alone.
        if (errno != EWOULDBLOCK && first_error.ok()) first_error = ErrnoStatus("lock " + path);
        ::close(fd);
        continue;
      }
      Result<std::string> data = ReadAll(fd, path);
      if (!data.ok()) {
        if (first_error.ok()) first_error = data.status().Annotate("journal " + path);
        ::close(fd);
        continue;
      }
      Dead f;
      f.fd = fd;
      f.path = path;
      f.reads = ParseJournalLines(*data, torn);
      dead.push_back(std::move(f));
    }
    // All at once; if that fails, file by file.
    bool all_done = false;
    if (dead.size() > 1) {
      std::vector<JournaledRead> all;
      for (const Dead& f : dead) all.insert(all.end(), f.reads.begin(), f.reads.end());
      all_done = ingest(all).ok();
    }
    for (Dead& f : dead) {
      Status st = all_done ? Status::Ok() : ingest(f.reads);
      if (st.ok()) {
        ::unlink(f.path.c_str());
      } else if (first_error.ok()) {
        first_error = st.Annotate("journal " + f.path);
      }
      ::close(f.fd);
    }
  }
  return first_error;
}

}  // namespace airlock
