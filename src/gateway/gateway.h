// The gateway: the pipeline every action goes through, and the only part that calls the
// policy, the connectors, the store and the audit chain. Front ends (CLI, server, MCP) call
// only this.
//
//   authenticate -> scope -> dry-run -> classify -> limits -> decide -> apply -> audit
//
// Every transition of an action and its audit event are written in one store transaction.
// Any error while deciding is a denial (fail closed), and the denial is audited.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit.h"
#include "connectors/connector.h"
#include "core/status.h"
#include "core/types.h"
#include "gateway/command_journal.h"
#include "gateway/read_journal.h"
#include "policy/policy.h"
#include "store/store.h"

namespace airlock {

class ClaimLock;

// Who is calling, from the token they hold.
// The PostgreSQL store's connection string from the policy (store: postgres://... or the
// variable store_dsn_env names). A secret: never printed.
Result<std::string> StoreDsn(const Policy& p);

// A new action's id: "act_", the time in ms (11 hex digits), then 52 random bits (13 hex
// digits). Ids sort by the time they were made (gateway.cc says why).
std::string NewActionId();

// What the audit keeps of a decided action: the full arguments, the effect and why.
Json DecisionPayload(const Action& a);
// CanonicalJson(DecisionPayload(a)), written as text without the tree (the read fast path's
// payload): the same bytes, which the audit chain hashes.
std::string CanonicalDecisionPayload(const Action& a);

struct Principal {
  enum class Role { kAgent, kApprover, kOperator };
  Role role = Role::kOperator;
  std::string name;           // empty for the operator
  std::string Label() const;  // "agent:support-bot", "approver:alice", "operator"
};

// What a submission, vote or rollback came to. `status` is OK when the pipeline ran to a
// decision (applied, pending, denied, ...); otherwise it says why the request itself failed
// (bad input, unknown action, ...). `action` is filled whenever an action record exists.
struct Outcome {
  Status status;
  std::optional<Action> action;
  Json report = nullptr;  // rollback conflicts
};

// How a gateway runs. The CLI opens one per command; `airlock serve` keeps one for its life.
struct GatewayOptions {
  // Batch the durable commit of reads and decisions with other threads' (Store::
  // TransactGrouped): many concurrent submissions share one fsync. Off for the CLI, where
  // there is nobody to share with and a committer thread would only cost its start.
  bool group_commit = false;
  // The CLI's one action, known before the store is opened: a shell target builds its
  // sandbox meanwhile (Connector::Prestart). The command waits, contained, until Submit has
  // authenticated the caller, checked the scope and decided that it may run; a denied or
  // different action discards the sandbox unrun.
  std::string prestart_target;
  Json prestart_args;
  // How long a journaled read's record may wait in memory for a full batch before the
  // flusher writes what there is (airlock mcp stdio; see RecordJournaledRead).
  int64_t quiet_flush_ms = 1000;
  // A long-lived process (airlock serve): each connector may keep built ahead what its next
  // action needs (Connector::KeepWarm; a shell target keeps one sandbox ready).
  bool keep_warm = false;
  // The CLI's `exec`: a command's read is recorded as one synced line in the command
  // journal (CommandJournal: its full effect and result) instead of a store commit, and its
  // start takes earlier commands' lines into the store only once kJournaledReadsTakenAt of
  // them wait. Every other command's start takes them all in, before it reads the store.
  // With a SQLite store, and a prestarted target; if the line cannot be written, the store
  // records the read.
  bool journal_reads = false;
  static constexpr size_t kJournaledReadsTakenAt = 32;

  static GatewayOptions WithGroupCommit() {
    GatewayOptions o;
    o.group_commit = true;
    return o;
  }
};

// What the gateway tells an observer after an action's state change is durable: the
// action as recorded and the audit event's name ("read", "submitted", "applied", "approved",
// "rejected", "expired", "rolled_back", ...). Called on the thread that made the change,
// outside every lock of the gateway; it must be quick and must not call back into it.
using ActionObserver = std::function<void(const Action& action, const std::string& event)>;

struct SubmitRequest {
  std::string target;
  std::string kind;  // "sql", "shell", "mcp"
  Json args = Json::object();
  // Only a read may run: an effect that changes anything is denied (MCP sql_query).
  bool read_only = false;
  // A client's key for retrying safely (1-128 printable ASCII characters; "" = none). The
  // action's id is derived from the agent and the key, so a retry with the same key finds
  // the action the first try recorded and gets it back instead of acting again, and two
  // racing tries cannot both be recorded (the store refuses a second action with that id).
  std::string idempotency_key = "";
};

class Gateway {
 public:
  // Opens the store named by the policy, then resolves actions a crash left half-done and
  // expires pending actions past their timeout.
  static Result<std::unique_ptr<Gateway>> Open(std::shared_ptr<const Policy> policy);
  // The same over a store the caller opened (another backend, or a fault-injecting wrapper
  // in tests).
  static Result<std::unique_ptr<Gateway>> OpenWithStore(std::shared_ptr<const Policy> policy,
                                                        std::unique_ptr<Store> store);
  static Result<std::unique_ptr<Gateway>> OpenWithStore(std::shared_ptr<const Policy> policy,
                                                        std::unique_ptr<Store> store,
                                                        const GatewayOptions& options);
  static Result<std::unique_ptr<Gateway>> Open(std::shared_ptr<const Policy> policy,
                                               const GatewayOptions& options);

  // Writes what is still queued of the reads' result records (FlushReadResults).
  ~Gateway();

  // Set once, before the gateway is shared between threads.
  void SetObserver(ActionObserver observer) { observer_ = std::move(observer); }
  // Changes other processes commit to a shared store (Store::WatchChanges).
  void WatchStoreChanges(std::function<void()> on_change) {
    store_->WatchChanges(std::move(on_change));
  }

  // Who holds this token (audited as auth_failed when nobody does).
  Result<Principal> WhoIs(const std::optional<std::string>& token);

  // `token` is the caller's raw token (nullopt: none given).
  Outcome Submit(const std::optional<std::string>& token, const SubmitRequest& request);
  // The read fast path without a blocked thread (group commit only). When `request` is
  // plainly a read that `token`'s agent may make (in its scopes, no idempotency key, shown a
  // read by the connector and classified read by the policy), runs it, hands its record to
  // the group committer and returns true. Otherwise returns false having recorded nothing,
  // and the caller uses Submit, which decides (and audits) everything else.
  // The reply is made here, so that the committer thread, which every grouped record waits
  // for, does no more than send it. `prepare` is called once on the caller's thread, before
  // the record is queued, with the outcome as it is recorded (the action with the summary of
  // what was read, lent for the call) and the reply's text: that action's JSON form
  // (ActionToJson, as CanonicalJson writes it) with the rows in place of the summary. What
  // it returns is called once with the record's status, on the committer thread after the
  // record is durable (on the caller's, at once, when the store is closing): OK, send what
  // was prepared; an error, withhold the rows. That must be quick and must not throw.
  // `hold` is the last reference to what the record was made of: the finish lets go of it
  // where it likes, best on the thread that made the action (a free on the committer, which
  // every batch waits for, into another thread's malloc arena, costs it a lock).
  using ReadFinish = std::function<void(const Status& recorded, std::shared_ptr<const void> hold)>;
  bool SubmitReadPrepared(const std::optional<std::string>& token, const SubmitRequest& request,
                          const std::function<ReadFinish(const Outcome&, std::string)>& prepare);
  // A tool call the policy marks read, in three steps for a session that reads its
  // upstream's answers on a thread of its own (airlock mcp stdio), so that no thread waits
  // for the other and the answer goes back from whichever step comes last:
  //   BeginMcpRead   on the client's thread: when `request` is plainly a read of an MCP server
  //                  outside any sandbox that `token`'s agent may call (in its scopes, no
  //                  idempotency key, classified read, breaker closed, not mode: dry-run),
  //                  returns its ticket having recorded nothing; else nullopt, and the caller
  //                  uses Submit, which decides and audits everything else.
  //   RecordMcpRead  once the request is sent: the record (the action and its `read` event
  //                  with the full arguments), made while the server works. Unless
  //                  `sync_reads`, one line appended to the session's journal (ReadJournal),
  //                  in the operating system when it returns; else a synced store commit.
  //   FinishMcpRead  once both are done, after the reply when there is one: a journaled
  //                  record is queued for the next batch (RecordJournaledRead), one synced
  //                  commit of up to 32 reads; then the action with the answer, or, if the record
  //                  failed, an error and no answer (fail closed); an upstream error fails the
  //                  action.
  // It is Submit's OverlappedMcpRead with its two waits turned inside out.
  struct McpReadTicket {
    Action action;
    Principal who;
    bool sync_record = false;  // the server's `sync_reads`: the reply waits for the disk
    bool journaled = false;    // RecordMcpRead appended it to the journal: not yet in the store
    int64_t at_ms = 0;         // the `read` event's time, when journaled
    uint64_t journal_file = 0;  // which of the journal's files holds its line
  };
  // `request` by value: its arguments become the action's, not copied again.
  std::optional<McpReadTicket> BeginMcpRead(const std::optional<std::string>& token,
                                            SubmitRequest request);
  Status RecordMcpRead(McpReadTicket& ticket);
  Outcome FinishMcpRead(McpReadTicket ticket, const Status& recorded, Result<Json> answer);
  Outcome Vote(const std::optional<std::string>& token, const std::string& id, bool approve,
               const std::string& reason);
  // `reason` (may be empty) is recorded with the rollback's audit events.
  Outcome Rollback(const std::optional<std::string>& token, const std::string& id,
                   const std::string& reason = "");
  Outcome Show(const std::optional<std::string>& token, const std::string& id);
  Result<std::vector<Action>> Pending(const std::optional<std::string>& token);
  // Actions matching `filter` (and `target` if non-empty), newest first. An agent sees only
  // its own.
  Result<std::vector<Action>> List(const std::optional<std::string>& token, ActionFilter filter,
                                   const std::string& target);
  Status ResetBreaker(const std::optional<std::string>& token, const std::string& target,
                      const std::string& agent);

  Result<audit::VerifyReport> VerifyAudit();
  // Events in order; only those of action_id if non-empty.
  Status ScanAudit(const std::optional<std::string>& token, const std::string& action_id,
                   const std::function<bool(const AuditEvent&)>& fn);
  // The same, from seq > after_seq (approvers only when a token is given).
  Status ScanAudit(const std::optional<std::string>& token, int64_t after_seq,
                   const std::string& action_id, const std::function<bool(const AuditEvent&)>& fn);
  // Counts of recorded actions by status, risk and target (for /metrics).
  Result<std::vector<ActionCount>> CountActions();
  Result<std::vector<Breaker>> Breakers();
  Result<AuditHead> AuditHeadNow();
  std::optional<CheckpointStats> StoreCheckpoints() { return store_->Checkpoints(); }

  // A tool call the policy marks read is recorded durably (action, `read` event, full
  // arguments) while it is in flight; the answer's size and shape follow in a `read_result`
  // event that need not hold up the reply: without group commit it is queued and written
  // with the next commit (no fsync of its own), or by this at the session's end (and by the
  // destructor). With group commit it joins the committer's next batch at once.
  Status FlushReadResults();

  // Moves the reads that `airlock mcp stdio` sessions staged (StoreTxn::StageRecord), and
  // those that dead sessions left only in their journals (ReadJournal), into actions and the
  // chain. Recover does it at every start; `airlock serve` once a second.
  Status IngestStaged();

  // Pending actions past their timeout become expired (a denial). Returns how many.
  Result<int> ExpireDue();
  // Resolves `applying` / `rolling_back` actions from what the target recorded.
  Status Recover();

  // airlock store gc: for each shell target, removes the blobs and held MCP answers that no
  // record may still need (CollectShellGarbage) and that nothing wrote or reused in the last
  // `older_than_s` seconds. Returns {"targets": [report per shell target], "errors": [...]};
  // a target that fails is listed under errors and loses nothing.
  Result<Json> CollectGarbage(int64_t older_than_s, bool dry_run);
  static constexpr int64_t kMinGcAgeSeconds = 3600;

  const Policy& policy() const { return *policy_; }
  // A target's connector configuration as the gateway builds it: the policy entry plus, for a
  // shell target, its state dir and airlock's own files to hide; for an MCP server run in a
  // sandbox, its shell target's configuration under "sandbox_target". NotFound: no target.
  Result<ConnectorConfig> ConnectorConfigFor(const std::string& target) const;

 private:
  Gateway(std::shared_ptr<const Policy> policy, std::unique_ptr<Store> store,
          const GatewayOptions& options);

  // One durable write transaction: grouped with other threads' when options_.group_commit.
  Status Commit(const std::function<Status(StoreTxn&)>& fn);
  // Serialises the submissions on one target (limits count what is recorded before them).
  std::mutex& TargetMutex(const std::string& target);

  // Constant-time over every known token hash; a wrong token and a missing one are
  // reported alike, so nothing tells which part was wrong.
  Result<Principal> Authenticate(const std::optional<std::string>& token) const;
  // Authentication for approver-only operations; agents are refused and audited.
  Result<Principal> AuthenticateApprover(const std::optional<std::string>& token,
                                         const std::string& operation, const std::string& id);

  Result<Connector*> ConnectorFor(const std::string& target);
  Outcome Deny(Action action, const std::string& event, const std::string& why,
               const Principal& who);
  // Records the action as failed for `why` (inserting it if new); the outcome carries `why`,
  // which tells the front end bad input (exit 2) from an error (exit 1).
  Outcome Fail(Action action, bool insert, const Status& why, const Principal& who);
  // Hard caps deny; an exceeded rate denies, asks for approval or trips the breaker; an open
  // breaker asks for approval. Sets action->status / quorum / reasons accordingly.
  Status ApplyLimits(Action* action);
  // Mail: the recipient caps (the target's max_recipients, limits' max_recipients and
  // max_recipients_per_hour). Sets action->status to denied when one is exceeded.
  Status ApplyRecipientLimits(Action* action);
  // Makes a tool call the policy marks read, then records it (one durable commit).
  Outcome McpRead(Action action, const Principal& who, std::unique_lock<std::mutex>& target_lock);
  // McpRead for a tool call: its record overlaps the call (see gateway.cc).
  Outcome OverlappedMcpRead(Action action, const Principal& who);
  // The `read_result` record of a read whose reply is on its way (see FlushReadResults).
  void RecordReadResult(const Action& action, const std::string& principal);
  // A read that ran in the sandbox (or on the read fast path): recorded once, then its rows
  // are handed back.
  Outcome FinishRead(Action action, DryRunResult dry, const Principal& who);
  // A new action of `who` for `request`: a fresh id, now, its arguments (moved from it).
  static Action NewAction(const Principal& who, SubmitRequest request);
  // network: proxy. One request a command made through the egress proxy becomes an http
  // action of the shell target, linked to the command's action (exec_id): decided like an
  // http target's request and recorded before anything is sent. An allowed one is recorded
  // as applying and copied to *started; FinishEgress records what became of it.
  friend class GatewayEgressGate;
  // *claim holds the allowed action's claim until it is finished, so that crash recovery in
  // another airlock process leaves a live request alone.
  EgressDecision DecideEgress(const Principal& who, const std::string& exec_id,
                              const std::string& target, const EgressRequest& request,
                              Action* started, ClaimLock* claim);
  void FinishEgress(Action action, const Principal& who, const Status& sent, const Json& result);
  // The claim that tells crash recovery an action is being worked on: the store's own when
  // it has one (PostgreSQL: seen by every instance), else the lock file beside the store.
  Result<ClaimLock> Claim(const std::string& action_id, bool wait);
  // Runs an action whose status was set to applying (claimed) in the store.
  Outcome ApplyClaimed(Action action, const Principal& who);
  Status Record(const Action& action, const std::string& event, const std::string& principal,
                Json payload, bool insert = false);
  Status AuditOnly(const std::string& action_id, const std::string& principal,
                   const std::string& event, Json payload);

  std::shared_ptr<const Policy> policy_;
  GatewayOptions options_;
  ActionObserver observer_;
  Classifier classifier_;
  std::unique_ptr<Store> store_;
  std::mutex connectors_mu_;
  std::map<std::string, std::unique_ptr<Connector>> connectors_;  // GUARDED_BY(connectors_mu_)
  // Read results waiting for the next commit (only without group commit).
  struct QueuedWrite {
    std::shared_ptr<const Action> action;  // as the write leaves it, for the observer
    std::function<Status(StoreTxn&)> write;
    // A journaled read's whole record (RecordJournaledRead): its journal line is done once
    // this is committed, and kept for the next start if it is dropped.
    bool journaled = false;
    uint64_t journal_file = 0;
    int64_t queued_ms = 0;
  };
  // After a commit that held `queued` (committed) or dropped them: their journal lines and
  // the observer.
  void QueuedWritesDone(const std::vector<QueuedWrite>& queued, bool committed);
  // Queues writes that a failed commit held again, in front of the others.
  void PutBack(std::vector<QueuedWrite> writes);
  // kMaxQueuedReads wait: the store has not taken the last batches.
  bool JournalBacklogged();
  std::atomic<size_t> unwritten_{0};  // queued writes not yet committed or dropped
  // A journaled read answered without error: its action, `read` and `read_result` events are
  // queued as one write for the next batch (no store work before the next call).
  void RecordJournaledRead(const Action& action, const std::string& principal, int64_t at_ms,
                           uint64_t journal_file);
  // Flushes the queued writes of a session that went quiet, so that its reads reach the
  // chain within about a second (other processes see them then).
  void FlushLoop();
  std::mutex flush_mu_;  // one flush at a time, so batches reach the chain in order
  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool flusher_stop_ = false;  // GUARDED_BY(flusher_mu_)
  std::thread flusher_;        // started with the first journaled read
  std::mutex queued_mu_;
  std::vector<QueuedWrite> queued_;  // GUARDED_BY(queued_mu_)
  // Reads this gateway staged since its last FlushReadResults, and the batch that flushes.
  std::atomic<int64_t> staged_{0};
  static constexpr size_t kReadResultBatch = 32;
  static constexpr size_t kMaxQueuedReads = 8 * kReadResultBatch;
  // The journal of this gateway's read calls (RecordMcpRead), created on first use; none when
  // it cannot be, once it is broken, or with a PostgreSQL store (the staged commit is made
  // before the reply instead).
  ReadJournal* Journal();
  std::mutex journal_mu_;
  std::unique_ptr<ReadJournal> journal_;  // GUARDED_BY(journal_mu_) until set
  bool journal_tried_ = false;            // GUARDED_BY(journal_mu_)
  // Writes the reads of dead sessions' journals, and the command journal's once it holds
  // `min_command_lines`, into the store (Recover).
  Status RecoverJournals(size_t min_command_lines = 0);
  std::unique_ptr<CommandJournal> command_journal_;  // set in Open, with journal_reads
  // The staged commit of a read call's record (RecordMcpRead, FinishMcpRead).
  Status StageMcpRead(McpReadTicket& ticket);
  std::mutex target_mu_;
  std::map<std::string, std::unique_ptr<std::mutex>> target_locks_;  // GUARDED_BY(target_mu_)
};

// Writes the reads that dead `airlock mcp stdio` sessions left only in their journals (in
// journal_dir: the store's path + ".journal") into `store`'s actions and chain, once each,
// then removes those journals; live sessions' journals are left alone. Then the same for
// the reads of `airlock exec` in the command journal, if it holds `min_command_lines`.
Status WriteDeadReadJournals(const std::string& journal_dir, Store& store,
                             size_t min_command_lines = 0);

}  // namespace airlock
