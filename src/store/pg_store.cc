// The PostgreSQL implementation of Store, for several gateways that act as one.
//
// Consistency across processes comes from one rule: every write transaction first locks the
// audit chain's head row (SELECT ... FOR UPDATE). Every write in airlock appends to the chain,
// so writers on any instance are serialised there, as SQLite's writers are on its file:
// a vote is counted once, a quorum is reached once (the action row is read under that lock
// and its status moves pending -> applying in the same transaction), and the chain stays one
// unbroken chain. Expiry alone takes its rows first (SKIP LOCKED, see TransactDue), so that
// instances share it. Group commit takes the lock once per batch. Reads run in
// REPEATABLE READ READ ONLY transactions on a small pool of connections and take no lock.
//
// Payloads and action bodies are stored as bytea (hex on the wire): they are hashed byte for
// byte, and libpq's text parameters could not carry every byte string.
#include <poll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <iterator>
#include <mutex>
#include <thread>
#include <utility>

#include "connectors/postgres/libpq.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/json.h"
#include "store/group_commit.h"
#include "store/pg_store.h"

namespace airlock {
namespace {

using pg::Cell;
using pg::Conn;
using pg::IsNull;
using pg::ResultHandle;
using pg::Rows;

constexpr int kStoredJsonMaxDepth = 512;
constexpr size_t kMaxIdleReaders = 4;

// The schema, version by version: migration N is applied when schema_version's highest row
// is below N. Version 1 mirrors the SQLite store's tables.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE airlock_store.meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE airlock_store.audit_head (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  seq  BIGINT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE airlock_store.actions (
  id         TEXT PRIMARY KEY,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  agent      TEXT NOT NULL,
  target     TEXT NOT NULL,
  kind       TEXT NOT NULL,
  status     TEXT NOT NULL,
  risk       TEXT NOT NULL,
  expires_ms BIGINT NOT NULL,
  body       BYTEA NOT NULL
);
CREATE INDEX actions_by_status ON airlock_store.actions(status, created_ms);
CREATE INDEX actions_by_agent_target ON airlock_store.actions(agent, target, created_ms);
CREATE TABLE airlock_store.votes (
  action_id TEXT NOT NULL REFERENCES airlock_store.actions(id) ON DELETE CASCADE,
  approver  TEXT NOT NULL,
  approve   BOOLEAN NOT NULL,
  reason    TEXT NOT NULL,
  at_ms     BIGINT NOT NULL,
  ord       BIGSERIAL,
  PRIMARY KEY (action_id, approver)
);
CREATE TABLE airlock_store.undo (
  action_id  TEXT PRIMARY KEY REFERENCES airlock_store.actions(id) ON DELETE CASCADE,
  kind       TEXT NOT NULL,
  data       BYTEA NOT NULL,
  reversible BOOLEAN NOT NULL,
  note       TEXT NOT NULL
);
CREATE TABLE airlock_store.breakers (
  target     TEXT NOT NULL,
  agent      TEXT NOT NULL,
  open       BOOLEAN NOT NULL,
  changed_ms BIGINT NOT NULL,
  reason     TEXT NOT NULL,
  PRIMARY KEY (target, agent)
);
CREATE TABLE airlock_store.audit (
  seq       BIGINT PRIMARY KEY,
  at_ms     BIGINT NOT NULL,
  action_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  event     TEXT NOT NULL,
  payload   BYTEA NOT NULL,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
);
CREATE INDEX audit_by_action ON airlock_store.audit(action_id, seq);
INSERT INTO airlock_store.meta(key, value) VALUES ('app', 'airlock');
INSERT INTO airlock_store.audit_head(id, seq, hash) VALUES (1, 0, 'GENESIS_PLACEHOLDER');
)sql",
};

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> HexDecode(const std::string& hex) {
  if (hex.size() % 2 != 0) return Status::Corruption("odd-length hex from the store");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = HexNibble(hex[2 * i]);
    int lo = HexNibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status::Corruption("bad hex from the store");
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

int64_t ToInt(const std::string& s) { return s.empty() ? 0 : std::stoll(s); }
std::string B(bool v) { return v ? "true" : "false"; }
bool IsTrue(const std::string& s) { return s == "t" || s == "true"; }

class PgTxn final : public StoreTxn {
 public:
  PgTxn(Conn& c, bool writing) : c_(c), writing_(writing) {}

  using StoreTxn::InsertAction;
  Status InsertAction(const Action& a, const std::string& body) override;
  Status UpdateAction(const Action& a) override;
  Result<std::optional<Action>> GetAction(const std::string& id) override;
  Result<std::vector<Action>> ListActions(const ActionFilter& filter) override;
  Result<std::vector<ActionCount>> CountActions() override;
  Status AddVote(const std::string& action_id, const Vote& v) override;
  Status PutUndo(const std::string& action_id, const UndoRecord& undo) override;
  Result<std::optional<UndoRecord>> GetUndo(const std::string& action_id) override;
  Result<int64_t> CountWritesSince(const std::string& agent, const std::string& target,
                                   int64_t since_ms) override;
  Result<std::optional<Breaker>> GetBreaker(const std::string& target,
                                            const std::string& agent) override;
  Status PutBreaker(const Breaker& b) override;
  Result<std::vector<Breaker>> ListBreakers() override;
  Result<AuditEvent> AppendAudit(AuditEvent e) override;

  // Locks the chain's head for this transaction (the writers' lock) and reads it.
  Status LockHead();
  struct HeadState {
    AuditHead head;
    bool dirty = false;
  };
  HeadState SaveHeadState() const { return {head_, head_dirty_}; }
  void RestoreHeadState(const HeadState& h) {
    head_ = h.head;
    head_dirty_ = h.dirty;
  }
  Status FlushHead();
  bool appended() const { return appended_; }
  Result<Action> ActionFromRow(const std::string& id, const std::string& body_hex);

 private:
  Result<ResultHandle> Q(const std::string& sql, const std::vector<std::string>& params = {});
  Result<std::vector<Vote>> VotesOf(const std::string& action_id);

  Conn& c_;
  const bool writing_;
  AuditHead head_;
  bool head_dirty_ = false;
  bool appended_ = false;  // this transaction appended (a rolled-back closure's count too)
};

Result<ResultHandle> PgTxn::Q(const std::string& sql, const std::vector<std::string>& params) {
  Result<ResultHandle> r = c_.Query(sql, params);
  if (!r.ok()) return r.status().Annotate("the PostgreSQL store");
  return r;
}

Status PgTxn::LockHead() {
  ASSIGN_OR_RETURN(ResultHandle r,
                   Q("SELECT seq, hash FROM airlock_store.audit_head WHERE id = 1 FOR UPDATE"));
  if (Rows(r.get()) != 1) return Status::Corruption("the audit head is missing from the store");
  head_ = AuditHead{ToInt(Cell(r.get(), 0, 0)), Cell(r.get(), 0, 1)};
  head_dirty_ = false;
  return Status::Ok();
}

Status PgTxn::FlushHead() {
  if (!head_dirty_) return Status::Ok();
  ASSIGN_OR_RETURN(ResultHandle r, Q("UPDATE airlock_store.audit_head SET seq = $1, hash = $2 "
                                     "WHERE id = 1",
                                     {std::to_string(head_.seq), head_.hash}));
  (void)r;
  head_dirty_ = false;
  return Status::Ok();
}

Status PgTxn::InsertAction(const Action& a, const std::string& body) {
  Result<ResultHandle> r = c_.Query(
      "INSERT INTO airlock_store.actions(id, created_ms, updated_ms, agent, target, kind, status, "
      "risk, expires_ms, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, decode($10, 'hex'))",
      {a.id, std::to_string(a.created_ms), std::to_string(a.updated_ms), a.agent, a.target, a.kind,
       ActionStatusName(a.status), RiskName(a.risk), std::to_string(a.expires_ms),
       HexEncode(body)});
  if (!r.ok() && c_.last_sqlstate() == "23505") {
    return Status::FailedPrecondition("action " + a.id + " already exists");
  }
  RETURN_IF_ERROR(r.status());
  for (const Vote& v : a.votes) RETURN_IF_ERROR(AddVote(a.id, v));
  return Status::Ok();
}

Status PgTxn::UpdateAction(const Action& a) {
  ASSIGN_OR_RETURN(
      ResultHandle r,
      Q("UPDATE airlock_store.actions SET created_ms = $2, updated_ms = $3, agent = $4, "
        "target = $5, kind = $6, status = $7, risk = $8, expires_ms = $9, "
        "body = decode($10, 'hex') WHERE id = $1 RETURNING 1",
        {a.id, std::to_string(a.created_ms), std::to_string(a.updated_ms), a.agent, a.target,
         a.kind, ActionStatusName(a.status), RiskName(a.risk), std::to_string(a.expires_ms),
         HexEncode(StoredActionBody(a))}));
  if (Rows(r.get()) == 0) return Status::NotFound("no action " + a.id);
  return Status::Ok();
}

Result<Action> PgTxn::ActionFromRow(const std::string& id, const std::string& body_hex) {
  ASSIGN_OR_RETURN(std::string body, HexDecode(body_hex));
  Result<Json> j = ParseJson(body, kStoredJsonMaxDepth);
  if (!j.ok()) return Status::Corruption("action " + id + ": " + j.status().message());
  Result<Action> a = ActionFromJson(*j);
  if (!a.ok()) return a.status().Annotate("action " + id + " in the PostgreSQL store");
  ASSIGN_OR_RETURN(a->votes, VotesOf(id));
  return a;
}

Result<std::vector<Vote>> PgTxn::VotesOf(const std::string& action_id) {
  ASSIGN_OR_RETURN(ResultHandle r,
                   Q("SELECT approver, approve, reason, at_ms FROM airlock_store.votes "
                     "WHERE action_id = $1 ORDER BY at_ms, ord",
                     {action_id}));
  std::vector<Vote> votes;
  for (int i = 0; i < Rows(r.get()); ++i) {
    votes.push_back(Vote{Cell(r.get(), i, 0), IsTrue(Cell(r.get(), i, 1)), Cell(r.get(), i, 2),
                         ToInt(Cell(r.get(), i, 3))});
  }
  return votes;
}

Result<std::optional<Action>> PgTxn::GetAction(const std::string& id) {
  // In a write transaction the action's row is locked too: the writers' lock already orders
  // everything, and the row lock says what is being decided.
  ASSIGN_OR_RETURN(ResultHandle r,
                   Q(std::string("SELECT encode(body, 'hex') FROM airlock_store.actions "
                                 "WHERE id = $1") +
                         (writing_ ? " FOR UPDATE" : ""),
                     {id}));
  if (Rows(r.get()) == 0) return std::optional<Action>();
  ASSIGN_OR_RETURN(Action a, ActionFromRow(id, Cell(r.get(), 0, 0)));
  return std::optional<Action>(std::move(a));
}

Result<std::vector<Action>> PgTxn::ListActions(const ActionFilter& filter) {
  const std::string order =
      filter.newest_first ? " ORDER BY created_ms DESC, id DESC" : " ORDER BY created_ms, id";
  ASSIGN_OR_RETURN(
      ResultHandle r,
      Q("SELECT id, encode(body, 'hex') FROM airlock_store.actions WHERE ($1 = '' OR status = $1) "
        "AND ($2 = '' OR agent = $2) AND ($3 = '' OR target = $3)" +
            order + (filter.limit > 0 ? " LIMIT " + std::to_string(filter.limit) : ""),
        {filter.status ? ActionStatusName(*filter.status) : "", filter.agent, filter.target}));
  std::vector<Action> actions;
  for (int i = 0; i < Rows(r.get()); ++i) {
    ASSIGN_OR_RETURN(Action a, ActionFromRow(Cell(r.get(), i, 0), Cell(r.get(), i, 1)));
    actions.push_back(std::move(a));
  }
  return actions;
}

Result<std::vector<ActionCount>> PgTxn::CountActions() {
  ASSIGN_OR_RETURN(ResultHandle r,
                   Q("SELECT status, risk, target, count(*) FROM airlock_store.actions "
                     "GROUP BY status, risk, target ORDER BY 1, 2, 3"));
  std::vector<ActionCount> out;
  for (int i = 0; i < Rows(r.get()); ++i) {
    auto status = ParseActionStatus(Cell(r.get(), i, 0));
    auto risk = ParseRisk(Cell(r.get(), i, 1));
    if (!status || !risk) return Status::Corruption("actions table: unknown status or risk");
    out.push_back({*status, *risk, Cell(r.get(), i, 2), ToInt(Cell(r.get(), i, 3))});
  }
  return out;
}

Status PgTxn::AddVote(const std::string& action_id, const Vote& v) {
  Result<ResultHandle> r =
      c_.Query("INSERT INTO airlock_store.votes(action_id, approver, approve, reason, at_ms) "
               "VALUES ($1, $2, $3, $4, $5)",
               {action_id, v.approver, B(v.approve), v.reason, std::to_string(v.at_ms)});
  if (r.ok()) return Status::Ok();
  if (c_.last_sqlstate() == "23503") return Status::NotFound("no action " + action_id);
  if (c_.last_sqlstate() == "23505") {
    return Status::FailedPrecondition(v.approver + " already voted on " + action_id);
  }
  return r.status();
}

Status PgTxn::PutUndo(const std::string& action_id, const UndoRecord& undo) {
  Result<ResultHandle> r = c_.Query(
      "INSERT INTO airlock_store.undo(action_id, kind, data, reversible, note) "
      "VALUES ($1, $2, decode($3, 'hex'), $4, $5) ON CONFLICT (action_id) DO UPDATE SET "
      "kind = EXCLUDED.kind, data = EXCLUDED.data, reversible = EXCLUDED.reversible, "
      "note = EXCLUDED.note",
      {action_id, undo.kind, HexEncode(undo.data), B(undo.reversible), undo.note});
  if (!r.ok() && c_.last_sqlstate() == "23503") {
    return Status::NotFound("no action " + action_id + " to keep an undo record for");
  }
  return r.status();
}

Result<std::optional<UndoRecord>> PgTxn::GetUndo(const std::string& action_id) {
  ASSIGN_OR_RETURN(ResultHandle r,
                   Q("SELECT kind, encode(data, 'hex'), reversible, note FROM airlock_store.undo "
                     "WHERE action_id = $1",
                     {action_id}));
  if (Rows(r.get()) == 0) return std::optional<UndoRecord>();
  ASSIGN_OR_RETURN(std::string data, HexDecode(Cell(r.get(), 0, 1)));
  return std::optional<UndoRecord>(UndoRecord{Cell(r.get(), 0, 0), std::move(data),
                                              IsTrue(Cell(r.get(), 0, 2)), Cell(r.get(), 0, 3)});
}

Result<int64_t> PgTxn::CountWritesSince(const std::string& agent, const std::string& target,
                                        int64_t since_ms) {
  ASSIGN_OR_RETURN(ResultHandle r,
                   Q("SELECT count(*) FROM airlock_store.actions WHERE agent = $1 AND target = $2 "
                     "AND created_ms >= $3 AND risk <> 'read'",
                     {agent, target, std::to_string(since_ms)}));
  return ToInt(Cell(r.get(), 0, 0));
}

Result<std::optional<Breaker>> PgTxn::GetBreaker(const std::string& target,
                                                 const std::string& agent) {
  ASSIGN_OR_RETURN(ResultHandle r,
                   Q("SELECT open, changed_ms, reason FROM airlock_store.breakers "
                     "WHERE target = $1 AND agent = $2",
                     {target, agent}));
  if (Rows(r.get()) == 0) return std::optional<Breaker>();
  return std::optional<Breaker>(Breaker{target, agent, IsTrue(Cell(r.get(), 0, 0)),
                                        ToInt(Cell(r.get(), 0, 1)), Cell(r.get(), 0, 2)});
}

Status PgTxn::PutBreaker(const Breaker& b) {
  return Q("INSERT INTO airlock_store.breakers(target, agent, open, changed_ms, reason) "
           "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target, agent) DO UPDATE SET "
           "open = EXCLUDED.open, changed_ms = EXCLUDED.changed_ms, reason = EXCLUDED.reason",
           {b.target, b.agent, B(b.open), std::to_string(b.changed_ms), b.reason})
      .status();
}

Result<std::vector<Breaker>> PgTxn::ListBreakers() {
  ASSIGN_OR_RETURN(ResultHandle r, Q("SELECT target, agent, open, changed_ms, reason FROM "
                                     "airlock_store.breakers ORDER BY target, agent"));
  std::vector<Breaker> out;
  for (int i = 0; i < Rows(r.get()); ++i) {
    out.push_back(Breaker{Cell(r.get(), i, 0), Cell(r.get(), i, 1), IsTrue(Cell(r.get(), i, 2)),
                          ToInt(Cell(r.get(), i, 3)), Cell(r.get(), i, 4)});
  }
  return out;
}

Result<AuditEvent> PgTxn::AppendAudit(AuditEvent e) {
  if (!writing_) return Status::FailedPrecondition("appending to the audit in a read transaction");
  e.seq = head_.seq + 1;
  if (e.at_ms == 0) e.at_ms = NowMs();
  e.prev_hash = head_.hash;
  const std::string payload =
      e.canonical_payload.empty() ? CanonicalJson(e.payload) : std::move(e.canonical_payload);
  e.canonical_payload.clear();
  e.hash = ComputeEventHash(e.prev_hash, e, payload);
  Result<ResultHandle> r = c_.Query(
      "INSERT INTO airlock_store.audit(seq, at_ms, action_id, principal, event, payload, "
      "prev_hash, hash) VALUES ($1, $2, $3, $4, $5, decode($6, 'hex'), $7, $8)",
      {std::to_string(e.seq), std::to_string(e.at_ms), e.action_id, e.principal, e.event,
       HexEncode(payload), e.prev_hash, e.hash});
  if (!r.ok() && c_.last_sqlstate() == "23505") {
    return Status::Corruption("audit event " + std::to_string(e.seq) +
                              " already exists: the chain runs past its recorded head");
  }
  RETURN_IF_ERROR(r.status());
  head_ = AuditHead{e.seq, e.hash};
  head_dirty_ = true;
  appended_ = true;
  return e;
}

class PgStore final : public Store {
 public:
  PgStore(std::string dsn, std::unique_ptr<Conn> writer)
      : dsn_(std::move(dsn)),
        writer_(std::move(writer)),
        grouped_("(PostgreSQL)", [this](std::vector<GroupedWork>& batch) { CommitBatch(batch); }) {}
  ~PgStore() override;

  Status Transact(const std::function<Status(StoreTxn&)>& fn) override;
  std::future<Status> TransactGrouped(std::function<Status(StoreTxn&)> fn) override;
  Status TransactGroupedWait(std::function<Status(StoreTxn&)> fn) override {
    return grouped_.PushAndWait(std::move(fn));
  }
  Status TransactDue(int64_t now_ms, int limit,
                     const std::function<Status(StoreTxn&, std::vector<Action>&)>& fn) override;
  void TransactGroupedAsync(std::function<Status(StoreTxn&)> fn,
                            std::function<void(Status)> done) override;
  Status Read(const std::function<Status(StoreTxn&)>& fn) override;
  Status ScanAudit(int64_t after_seq, const std::string& action_id,
                   const std::function<bool(const AuditEvent&)>& fn) override;
  Result<AuditHead> RecordedHead() override;
  void WatchChanges(std::function<void()> on_change) override;
  Result<std::optional<std::function<void()>>> ClaimAction(const std::string& action_id,
                                                           bool wait) override;

 private:
  void ListenLoop();
  Result<Conn*> Writer();  // requires write_mu_
  // One write transaction on the writer: BEGIN, the head lock, body, flush, COMMIT.
  Status WriteTxn(const std::function<Status(PgTxn&)>& body);
  void CommitBatch(std::vector<GroupedWork>& batch);
  Result<std::unique_ptr<Conn>> TakeReader();
  void ReturnReader(std::unique_ptr<Conn> c);

  const std::string dsn_;
  std::mutex write_mu_;
  std::unique_ptr<Conn> writer_;  // GUARDED_BY(write_mu_)
  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Conn>> idle_readers_;  // GUARDED_BY(readers_mu_)
  GroupCommitQueue grouped_;
  // WatchChanges: the callback runs under watch_mu_, so replacing it waits for a running call.
  std::mutex watch_mu_;
  std::function<void()> on_change_;  // GUARDED_BY(watch_mu_)
  std::thread listener_;             // GUARDED_BY(watch_mu_)
  std::atomic<bool> stop_listening_{false};
};

PgStore::~PgStore() {
  stop_listening_ = true;
  std::thread listener;
  {
    std::lock_guard lock(watch_mu_);
    listener = std::move(listener_);
  }
  if (listener.joinable()) listener.join();
  grouped_.Stop();  // drains: every future resolves
}

// A broken connection (the server restarted) is replaced before the next transaction.
Result<Conn*> PgStore::Writer() {
  if (!writer_ || !writer_->Healthy()) {
    writer_.reset();
    ASSIGN_OR_RETURN(writer_, Conn::Open(dsn_));
  }
  if (writer_->InTransaction()) (void)writer_->Exec("ROLLBACK");
  return writer_.get();
}

Status PgStore::WriteTxn(const std::function<Status(PgTxn&)>& body) {
  ASSIGN_OR_RETURN(Conn * c, Writer());
  RETURN_IF_ERROR(c->Exec("BEGIN ISOLATION LEVEL READ COMMITTED"));
  PgTxn txn(*c, /*writing=*/true);
  Status st = txn.LockHead();
  if (st.ok()) st = body(txn);
  if (st.ok()) st = txn.FlushHead();
  // Other instances' event streams LISTEN on this channel; PostgreSQL delivers the
  // notification at COMMIT, and not at all on a rollback.
  if (st.ok() && txn.appended()) st = c->Exec("SELECT pg_notify('airlock_store', '')");
  if (!st.ok()) {
    (void)c->Exec("ROLLBACK");
    return st;
  }
  st = c->Exec("COMMIT");
  if (!st.ok() && c->InTransaction()) (void)c->Exec("ROLLBACK");
  return st;
}

Status PgStore::Transact(const std::function<Status(StoreTxn&)>& fn) {
  std::lock_guard lock(write_mu_);
  return WriteTxn([&](PgTxn& t) { return RunClosure(fn, t); });
}

// The due actions are locked FOR UPDATE SKIP LOCKED before the chain's head: an instance
// expiring at the same moment skips the rows this one holds and takes others. That is the
// reverse of the writers' order (head, then the action's row), so the head is waited for at
// most kExpiryHeadWait: a writer waiting for one of these rows while this transaction waits
// for its head would otherwise hold both until PostgreSQL's deadlock check. Timing out there
// gives everything back; the next run tries again.
Status PgStore::TransactDue(int64_t now_ms, int limit,
                            const std::function<Status(StoreTxn&, std::vector<Action>&)>& fn) {
  constexpr const char* kExpiryHeadWait = "200ms";
  std::lock_guard lock(write_mu_);
  ASSIGN_OR_RETURN(Conn * c, Writer());
  RETURN_IF_ERROR(c->Exec("BEGIN ISOLATION LEVEL READ COMMITTED"));
  PgTxn txn(*c, /*writing=*/true);
  std::vector<Action> due;
  Status st = [&]() -> Status {
    Result<ResultHandle> r =
        c->Query("SELECT id, encode(body, 'hex') FROM airlock_store.actions "
                 "WHERE status = 'pending' AND expires_ms > 0 AND expires_ms <= $1 "
                 "ORDER BY expires_ms, id" +
                     (limit > 0 ? " LIMIT " + std::to_string(limit) : std::string()) +
                     " FOR UPDATE SKIP LOCKED",
                 {std::to_string(now_ms)});
    if (!r.ok()) return r.status().Annotate("the PostgreSQL store");
    for (int i = 0; i < Rows(r->get()); ++i) {
      ASSIGN_OR_RETURN(Action a, txn.ActionFromRow(Cell(r->get(), i, 0), Cell(r->get(), i, 1)));
      due.push_back(std::move(a));
    }
    if (due.empty()) return Status::Ok();
    RETURN_IF_ERROR(c->Exec(std::string("SET LOCAL lock_timeout = '") + kExpiryHeadWait + "'"));
    Status locked = txn.LockHead();
    if (!locked.ok() && c->last_sqlstate() == "55P03") {  // lock_not_available: later
      due.clear();
      return Status::Ok();
    }
    RETURN_IF_ERROR(locked);
    RETURN_IF_ERROR(c->Exec("SET LOCAL lock_timeout = 0"));
    RETURN_IF_ERROR(fn(txn, due));
    RETURN_IF_ERROR(txn.FlushHead());
    if (txn.appended()) RETURN_IF_ERROR(c->Exec("SELECT pg_notify('airlock_store', '')"));
    return Status::Ok();
  }();
  if (!st.ok() || due.empty()) {
    (void)c->Exec("ROLLBACK");
    return st;
  }
  st = c->Exec("COMMIT");
  if (!st.ok() && c->InTransaction()) (void)c->Exec("ROLLBACK");
  return st;
}

std::future<Status> PgStore::TransactGrouped(std::function<Status(StoreTxn&)> fn) {
  return grouped_.Push(std::move(fn));
}

void PgStore::TransactGroupedAsync(std::function<Status(StoreTxn&)> fn,
                              std::function<void(Status)> done) {
  grouped_.PushAsync(std::move(fn), std::move(done));
}

// As in the SQLite store: one transaction per batch. Closures rarely fail, so the first pass
// runs them back to back without savepoints (each costs two round trips to the server, more
// than a closure's own statements). If one fails, that pass is rolled back whole and the
// batch runs again with a savepoint per closure, so that only the failing ones are dropped
// and the head each saw is restored.
void PgStore::CommitBatch(std::vector<GroupedWork>& batch) {
  std::vector<Status> results(batch.size());
  Status batch_error;
  {
    std::lock_guard lock(write_mu_);
    bool closure_failed = false;
    auto pass = [&](bool savepoints) {
      closure_failed = false;
      return WriteTxn([&](PgTxn& t) -> Status {
        Conn& c = *writer_;
        for (size_t i = 0; i < batch.size(); ++i) {
          if (savepoints) RETURN_IF_ERROR(c.Exec("SAVEPOINT grouped"));
          const PgTxn::HeadState head = t.SaveHeadState();
          results[i] = RunClosure(batch[i].fn, t);
          if (!results[i].ok() && !savepoints) {
            closure_failed = true;
            return results[i];  // WriteTxn rolls the pass back
          }
          if (savepoints && results[i].ok()) {
            RETURN_IF_ERROR(c.Exec("RELEASE SAVEPOINT grouped"));
          } else if (savepoints) {
            RETURN_IF_ERROR(c.Exec("ROLLBACK TO SAVEPOINT grouped"));
            RETURN_IF_ERROR(c.Exec("RELEASE SAVEPOINT grouped"));
            t.RestoreHeadState(head);
          }
        }
        return Status::Ok();
      });
    };
    batch_error = pass(/*savepoints=*/false);
    if (closure_failed) batch_error = pass(/*savepoints=*/true);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].fn = nullptr;  // see GroupedWork
    batch[i].done(results[i].ok() ? batch_error : results[i]);
  }
}

Result<std::unique_ptr<Conn>> PgStore::TakeReader() {
  {
    std::lock_guard lock(readers_mu_);
    while (!idle_readers_.empty()) {
      std::unique_ptr<Conn> c = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      if (c->Healthy()) return c;
    }
  }
  return Conn::Open(dsn_);
}

void PgStore::ReturnReader(std::unique_ptr<Conn> c) {
  if (c->InTransaction()) (void)c->Exec("ROLLBACK");
  if (!c->Healthy() || c->InTransaction()) return;
  std::lock_guard lock(readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(c));
}

Status PgStore::Read(const std::function<Status(StoreTxn&)>& fn) {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, TakeReader());
  Status st = c->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (st.ok()) {
    PgTxn txn(*c, /*writing=*/false);
    st = RunClosure(fn, txn);
    Status end = c->Exec(st.ok() ? "COMMIT" : "ROLLBACK");
    if (st.ok()) st = end;
  }
  ReturnReader(std::move(c));
  return st;
}

Status PgStore::ScanAudit(int64_t after_seq, const std::string& action_id,
                          const std::function<bool(const AuditEvent&)>& fn) {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, TakeReader());
  // Pages of 1,000: a long chain is not held in memory at once.
  int64_t cursor = after_seq;
  Status st;
  while (st.ok()) {
    Result<ResultHandle> r = c->Query(
        "SELECT seq, at_ms, action_id, principal, event, encode(payload, 'hex'), prev_hash, hash "
        "FROM airlock_store.audit WHERE seq > $1 AND ($2 = '' OR action_id = $2) "
        "ORDER BY seq LIMIT 1000",
        {std::to_string(cursor), action_id});
    if (!r.ok()) {
      st = r.status();
      break;
    }
    const int n = Rows(r->get());
    bool stop = false;
    for (int i = 0; i < n && !stop; ++i) {
      const PGresult* res = r->get();
      AuditEvent e;
      e.seq = ToInt(Cell(res, i, 0));
      e.at_ms = ToInt(Cell(res, i, 1));
      e.action_id = Cell(res, i, 2);
      e.principal = Cell(res, i, 3);
      e.event = Cell(res, i, 4);
      Result<std::string> payload = HexDecode(Cell(res, i, 5));
      if (!payload.ok()) {
        st = payload.status();
        break;
      }
      Result<Json> j = ParseJson(*payload, kStoredJsonMaxDepth);
      if (!j.ok()) {
        st = Status::Corruption("audit event " + std::to_string(e.seq) + ": " +
                                j.status().message());
        break;
      }
      e.payload = std::move(*j);
      e.prev_hash = Cell(res, i, 6);
      e.hash = Cell(res, i, 7);
      cursor = e.seq;
      stop = !fn(e);
    }
    if (stop || n < 1000) break;
  }
  ReturnReader(std::move(c));
  return st;
}

Result<AuditHead> PgStore::RecordedHead() {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, TakeReader());
  Result<ResultHandle> r = c->Query("SELECT seq, hash FROM airlock_store.audit_head WHERE id = 1");
  Result<AuditHead> out = Status::Corruption("the audit head is missing from the store");
  if (!r.ok()) {
    out = r.status();
  } else if (Rows(r->get()) == 1) {
    out = AuditHead{ToInt(Cell(r->get(), 0, 0)), Cell(r->get(), 0, 1)};
  }
  ReturnReader(std::move(c));
  return out;
}

// A session-level advisory lock on a connection of its own, kept until the claim is let go:
// PostgreSQL drops it when the session ends, so a process that dies (on any host) lets go
// of its claims, and recovery elsewhere can tell its actions were abandoned.
Result<std::optional<std::function<void()>>> PgStore::ClaimAction(const std::string& action_id,
                                                                  bool wait) {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, Conn::Open(dsn_));
  const std::string key = "hashtextextended($1, 7477726174)";
  ASSIGN_OR_RETURN(ResultHandle r,
                   c->Query(std::string("SELECT ") +
                                (wait ? "pg_advisory_lock(" : "pg_try_advisory_lock(") + key +
                                ")::text",
                            {action_id}));
  if (!wait && Cell(r.get(), 0, 0) != "true") {
    return Status::FailedPrecondition(action_id + " is being worked on by another process");
  }
  std::shared_ptr<Conn> held(std::move(c));
  return std::optional<std::function<void()>>([held, action_id, key] {
    // Closing the session would let go as well; unlocking first says so explicitly.
    (void)held->Query("SELECT pg_advisory_unlock(" + key + ")", {action_id});
  });
}

void PgStore::WatchChanges(std::function<void()> on_change) {
  std::lock_guard lock(watch_mu_);
  on_change_ = std::move(on_change);
  if (on_change_ && !listener_.joinable()) listener_ = std::thread([this] { ListenLoop(); });
}

// A connection of its own that LISTENs, polled four times a second so that the destructor
// never waits long; a lost connection is opened again (the followers poll meanwhile).
void PgStore::ListenLoop() {
  std::unique_ptr<Conn> conn;
  while (!stop_listening_) {
    if (!conn) {
      Result<std::unique_ptr<Conn>> opened = Conn::Open(dsn_);
      if (opened.ok() && (*opened)->Exec("LISTEN airlock_store").ok()) {
        conn = std::move(*opened);
      } else {
        for (int i = 0; i < 8 && !stop_listening_; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
        continue;
      }
    }
    pollfd pfd{conn->Socket(), POLLIN, 0};
    if (::poll(&pfd, 1, 250) <= 0) continue;
    Result<int> n = conn->TakeNotifications();
    if (!n.ok()) {
      conn.reset();
      continue;
    }
    if (*n == 0) continue;
    std::lock_guard lock(watch_mu_);
    if (on_change_) on_change_();
  }
}

// The schema's version: 0 when the schema does not exist yet.
Result<int64_t> SchemaVersion(Conn& c) {
  ASSIGN_OR_RETURN(ResultHandle r,
                   c.Query("SELECT to_regclass('airlock_store.schema_version') IS NOT NULL"));
  if (!IsTrue(Cell(r.get(), 0, 0))) return int64_t{0};
  ASSIGN_OR_RETURN(ResultHandle v,
                   c.Query("SELECT coalesce(max(version), 0) FROM airlock_store.schema_version"));
  return ToInt(Cell(v.get(), 0, 0));
}

std::string MigrationSql(int version) {
  std::string sql = kMigrations[version - 1];
  return sql;
}

}  // namespace

constexpr int kPgSchemaVersion = static_cast<int>(std::size(kMigrations));

Result<PgMigration> MigratePgStore(const std::string& dsn) {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, Conn::Open(dsn));
  PgMigration out;
  // One transaction, under an advisory lock, so that two gateways starting at once do not
  // both create the schema.
  RETURN_IF_ERROR(c->Exec("BEGIN"));
  auto fail = [&](Status st) {
    (void)c->Exec("ROLLBACK");
    return st;
  };
  if (Status st = c->Exec("SELECT pg_advisory_xact_lock(7477726174)"); !st.ok()) return fail(st);
  if (Status st = c->Exec("CREATE SCHEMA IF NOT EXISTS airlock_store; "
                          "CREATE TABLE IF NOT EXISTS airlock_store.schema_version ("
                          "version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)");
      !st.ok()) {
    return fail(st);
  }
  Result<int64_t> from = SchemaVersion(*c);
  if (!from.ok()) return fail(from.status());
  out.from_version = *from;
  if (*from > kPgSchemaVersion) {
    return fail(Status::FailedPrecondition(
        "the PostgreSQL store's schema version " + std::to_string(*from) +
        " is newer than this airlock's (" + std::to_string(kPgSchemaVersion) + "); upgrade airlock"));
  }
  for (int v = static_cast<int>(*from) + 1; v <= kPgSchemaVersion; ++v) {
    std::string sql = MigrationSql(v);
    const std::string placeholder = "GENESIS_PLACEHOLDER";
    if (auto at = sql.find(placeholder); at != std::string::npos) {
      sql.replace(at, placeholder.size(), kGenesisHash);
    }
    if (Status st = c->Exec(sql); !st.ok()) return fail(st.Annotate("schema version " + std::to_string(v)));
    if (Status st = c->Exec("INSERT INTO airlock_store.schema_version(version, applied_ms) VALUES (" +
                            std::to_string(v) + ", " + std::to_string(NowMs()) + ")");
        !st.ok()) {
      return fail(st);
    }
  }
  out.to_version = kPgSchemaVersion;
  RETURN_IF_ERROR(c->Exec("COMMIT"));
  return out;
}

bool IsPostgresStoreUrl(const std::string& store) {
  return store.rfind("postgres://", 0) == 0 || store.rfind("postgresql://", 0) == 0;
}

Result<std::unique_ptr<Store>> OpenPgStore(const std::string& dsn) {
  // Created (or upgraded) on first use, like the SQLite store.
  RETURN_IF_ERROR(MigratePgStore(dsn).status());
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> writer, Conn::Open(dsn));
  return std::unique_ptr<Store>(new PgStore(dsn, std::move(writer)));
}

Result<int64_t> CopyStore(Store& from, Store& to) {
  ASSIGN_OR_RETURN(AuditHead head, to.RecordedHead());
  if (head.seq != 0) {
    return Status::FailedPrecondition(
        "the destination store already holds " + std::to_string(head.seq) +
        " audit events; airlock copies a store only into an empty one");
  }
  // Everything is read in one snapshot and written in one transaction: a copy is complete or
  // absent.
  std::vector<Action> actions;
  std::vector<std::pair<std::string, UndoRecord>> undos;
  std::vector<Breaker> breakers;
  RETURN_IF_ERROR(from.Read([&](StoreTxn& t) -> Status {
    ActionFilter all;
    all.limit = 0;
    ASSIGN_OR_RETURN(actions, t.ListActions(all));
    for (const Action& a : actions) {
      ASSIGN_OR_RETURN(std::optional<UndoRecord> u, t.GetUndo(a.id));
      if (u) undos.emplace_back(a.id, std::move(*u));
    }
    ASSIGN_OR_RETURN(breakers, t.ListBreakers());
    return Status::Ok();
  }));
  std::vector<AuditEvent> events;
  RETURN_IF_ERROR(from.ScanAudit(0, "", [&](const AuditEvent& e) {
    events.push_back(e);
    return true;
  }));
  RETURN_IF_ERROR(to.Transact([&](StoreTxn& t) -> Status {
    for (const Action& a : actions) RETURN_IF_ERROR(t.InsertAction(a));
    for (const auto& [id, u] : undos) RETURN_IF_ERROR(t.PutUndo(id, u));
    for (const Breaker& b : breakers) RETURN_IF_ERROR(t.PutBreaker(b));
    for (AuditEvent e : events) {
      // Re-appended with its time and payload bytes as recorded: the chain's hashes come out
      // the same, and a mismatch means the source was not intact.
      const std::string want = e.hash;
      e.canonical_payload = e.canonical_payload.empty() ? CanonicalJson(e.payload)
                                                        : e.canonical_payload;
      ASSIGN_OR_RETURN(AuditEvent stored, t.AppendAudit(std::move(e)));
      if (stored.hash != want) {
        return Status::Corruption("audit event " + std::to_string(stored.seq) +
                                  " does not hash to its recorded hash; the source chain is "
                                  "broken there (run airlock audit verify); nothing was copied");
      }
    }
    return Status::Ok();
  }));
  return static_cast<int64_t>(events.size());
}

}  // namespace airlock
