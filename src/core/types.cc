#include "core/types.h"

#include "core/json.h"

#include <array>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace airlock {
namespace {

constexpr std::array<std::pair<Risk, const char*>, 4> kRiskNames = {{
    {Risk::kRead, "read"},
    {Risk::kLow, "low"},
    {Risk::kHigh, "high"},
    {Risk::kCritical, "critical"},
}};

constexpr std::array<std::pair<ActionStatus, const char*>, 10> kStatusNames = {{
    {ActionStatus::kApplied, "applied"},
    {ActionStatus::kPending, "pending"},
    {ActionStatus::kDenied, "denied"},
    {ActionStatus::kExpired, "expired"},
    {ActionStatus::kRejected, "rejected"},
    {ActionStatus::kFailed, "failed"},
    {ActionStatus::kRolledBack, "rolled_back"},
    {ActionStatus::kEffectChanged, "effect_changed"},
    {ActionStatus::kApplying, "applying"},
    {ActionStatus::kRollingBack, "rolling_back"},
}};

// Reads an optional field of type T; a present field of the wrong type is an error, so a
// corrupt record is reported rather than half-loaded.
template <typename T>
Status Field(const Json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // get<T>() would static_cast a float (1e204) or an out-of-range integer: undefined
    // behaviour found by json_fuzz. Only an integer that fits is accepted.
    if (it->is_number_unsigned()) {
      if (it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return Status::Corruption(std::string("field '") + key + "': integer out of range");
      }
    } else if (it->is_number_integer()) {
      int64_t v = it->get<int64_t>();
      if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        return Status::Corruption(std::string("field '") + key + "': integer out of range");
      }
    } else {
      return Status::Corruption(std::string("field '") + key + "': not an integer");
    }
  }
  try {
    *out = it->get<T>();
  } catch (const Json::exception& e) {
    return Status::Corruption(std::string("field '") + key + "': " + e.what());
  }
  return Status::Ok();
}

}  // namespace

const char* RiskName(Risk r) {
  for (const auto& [risk, name] : kRiskNames) {
    if (risk == r) return name;
  }
  return "unknown";
}

std::optional<Risk> ParseRisk(std::string_view s) {
  for (const auto& [risk, name] : kRiskNames) {
    if (s == name) return risk;
  }
  return std::nullopt;
}

const char* ActionStatusName(ActionStatus s) {
  for (const auto& [status, name] : kStatusNames) {
    if (status == s) return name;
  }
  return "unknown";
}

std::optional<ActionStatus> ParseActionStatus(std::string_view s) {
  for (const auto& [status, name] : kStatusNames) {
    if (s == name) return status;
  }
  return std::nullopt;
}

bool IsFinal(ActionStatus s) {
  return s != ActionStatus::kPending && s != ActionStatus::kApplying &&
         s != ActionStatus::kRollingBack;
}

int ExitCodeFor(ActionStatus s) {
  switch (s) {
    case ActionStatus::kApplied:
    case ActionStatus::kRolledBack:
      return kExitOk;
    case ActionStatus::kPending:
      return kExitPending;
    case ActionStatus::kDenied:
    case ActionStatus::kExpired:
    case ActionStatus::kRejected:
    case ActionStatus::kEffectChanged:
      return kExitDenied;
    case ActionStatus::kFailed:
    case ActionStatus::kApplying:
    case ActionStatus::kRollingBack:
      return kExitError;
  }
  return kExitError;
}

int64_t Effect::RowsChanged() const {
  // Counts come from stored or connector JSON too: a sum past int64 stays at its limit
  // rather than overflowing.
  int64_t n = 0;
  for (const auto& t : tables) {
    for (const int64_t c : {t.inserted, t.updated, t.deleted}) {
      if (__builtin_add_overflow(n, c, &n)) {
        n = c > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
      }
    }
  }
  return n;
}

Json EffectToJson(const Effect& e) {
  Json tables = Json::array();
  for (const auto& t : e.tables) {
    tables.push_back({{"table", t.table},
                      {"inserted", t.inserted},
                      {"updated", t.updated},
                      {"deleted", t.deleted},
                      {"rows_after", t.rows_after},
                      {"all_rows_updated", t.all_rows_updated},
                      {"all_rows_deleted", t.all_rows_deleted},
                      {"has_primary_key", t.has_primary_key}});
  }
  Json ddl = Json::array();
  for (const auto& d : e.ddl) {
    ddl.push_back({{"op", d.op},
                   {"object", d.object},
                   {"table", d.table},
                   {"rows", d.rows},
                   {"indexes", d.indexes},
                   {"triggers", d.triggers},
                   {"detail", d.detail}});
  }
  Json preview = Json::array();
  for (const auto& r : e.preview) {
    preview.push_back(
        {{"table", r.table}, {"op", r.op}, {"before", r.before}, {"after", r.after}});
  }
  Json out = {{"kind", e.kind},
              {"tables", std::move(tables)},
              {"ddl", std::move(ddl)},
              {"preview", std::move(preview)},
              {"preview_omitted", e.preview_omitted},
              {"rows_changed", e.RowsChanged()},
              {"effect_hash", e.effect_hash},
              {"extra", e.extra}};
  if (!e.files.empty() || e.files_changed != 0 || e.kind == "shell") {
    Json files = Json::array();
    for (const auto& f : e.files) {
      Json jf = {{"path", f.path},       {"op", f.op},
                 {"type", f.type},       {"size_before", f.size_before},
                 {"size_after", f.size_after}, {"mode_before", f.mode_before},
                 {"mode_after", f.mode_after}, {"binary", f.binary}};
      if (!f.type_before.empty()) jf["type_before"] = f.type_before;
      if (!f.link_target.empty()) jf["link_target"] = f.link_target;
      if (!f.diff.empty()) jf["diff"] = f.diff;
      files.push_back(std::move(jf));
    }
    out["files"] = std::move(files);
    out["files_changed"] = e.files_changed;
  }
  return out;
}

Result<Effect> EffectFromJson(const Json& j) {
  if (!j.is_object()) return Status::Corruption("effect is not a JSON object");
  Effect e;
  RETURN_IF_ERROR(Field(j, "kind", &e.kind));
  RETURN_IF_ERROR(Field(j, "effect_hash", &e.effect_hash));
  RETURN_IF_ERROR(Field(j, "preview_omitted", &e.preview_omitted));
  if (auto it = j.find("extra"); it != j.end() && it->is_object()) e.extra = *it;
  if (auto it = j.find("tables"); it != j.end() && it->is_array()) {
    for (const auto& t : *it) {
      if (!t.is_object()) return Status::Corruption("effect.tables entry is not an object");
      TableChange c;
      RETURN_IF_ERROR(Field(t, "table", &c.table));
      RETURN_IF_ERROR(Field(t, "inserted", &c.inserted));
      RETURN_IF_ERROR(Field(t, "updated", &c.updated));
      RETURN_IF_ERROR(Field(t, "deleted", &c.deleted));
      RETURN_IF_ERROR(Field(t, "rows_after", &c.rows_after));
      RETURN_IF_ERROR(Field(t, "all_rows_updated", &c.all_rows_updated));
      RETURN_IF_ERROR(Field(t, "all_rows_deleted", &c.all_rows_deleted));
      RETURN_IF_ERROR(Field(t, "has_primary_key", &c.has_primary_key));
      e.tables.push_back(std::move(c));
    }
  }
  if (auto it = j.find("ddl"); it != j.end() && it->is_array()) {
    for (const auto& d : *it) {
      if (!d.is_object()) return Status::Corruption("effect.ddl entry is not an object");
      DdlOp op;
      RETURN_IF_ERROR(Field(d, "op", &op.op));
      RETURN_IF_ERROR(Field(d, "object", &op.object));
      RETURN_IF_ERROR(Field(d, "table", &op.table));
      RETURN_IF_ERROR(Field(d, "rows", &op.rows));
      RETURN_IF_ERROR(Field(d, "indexes", &op.indexes));
      RETURN_IF_ERROR(Field(d, "triggers", &op.triggers));
      RETURN_IF_ERROR(Field(d, "detail", &op.detail));
      e.ddl.push_back(std::move(op));
    }
  }
  if (auto it = j.find("preview"); it != j.end() && it->is_array()) {
    for (const auto& r : *it) {
      if (!r.is_object()) return Status::Corruption("effect.preview entry is not an object");
      RowChange c;
      RETURN_IF_ERROR(Field(r, "table", &c.table));
      RETURN_IF_ERROR(Field(r, "op", &c.op));
      if (auto b = r.find("before"); b != r.end()) c.before = *b;
      if (auto a = r.find("after"); a != r.end()) c.after = *a;
      e.preview.push_back(std::move(c));
    }
  }
  RETURN_IF_ERROR(Field(j, "files_changed", &e.files_changed));
  if (auto it = j.find("files"); it != j.end() && it->is_array()) {
    for (const auto& f : *it) {
      if (!f.is_object()) return Status::Corruption("effect.files entry is not an object");
      FileChange c;
      RETURN_IF_ERROR(Field(f, "path", &c.path));
      RETURN_IF_ERROR(Field(f, "op", &c.op));
      RETURN_IF_ERROR(Field(f, "type", &c.type));
      RETURN_IF_ERROR(Field(f, "type_before", &c.type_before));
      RETURN_IF_ERROR(Field(f, "size_before", &c.size_before));
      RETURN_IF_ERROR(Field(f, "size_after", &c.size_after));
      RETURN_IF_ERROR(Field(f, "mode_before", &c.mode_before));
      RETURN_IF_ERROR(Field(f, "mode_after", &c.mode_after));
      RETURN_IF_ERROR(Field(f, "link_target", &c.link_target));
      RETURN_IF_ERROR(Field(f, "diff", &c.diff));
      RETURN_IF_ERROR(Field(f, "binary", &c.binary));
      e.files.push_back(std::move(c));
    }
  }
  return e;
}

namespace {

// EffectToJson(e) as CanonicalJson writes it, keys in sorted order. core_test checks the two
// against each other over many effects.
void WriteEffect(const Effect& e, JsonTextWriter& w) {
  const bool files = !e.files.empty() || e.files_changed != 0 || e.kind == "shell";
  w.BeginObject();
  w.Key("ddl");
  w.BeginArray();
  for (const auto& d : e.ddl) {
    w.BeginObject();
    w.KeyString("detail", d.detail);
    w.Key("indexes");
    w.Strings(d.indexes);
    w.KeyString("object", d.object);
    w.KeyString("op", d.op);
    w.KeyInt("rows", d.rows);
    w.KeyString("table", d.table);
    w.Key("triggers");
    w.Strings(d.triggers);
    w.EndObject();
  }
  w.EndArray();
  w.KeyString("effect_hash", e.effect_hash);
  w.KeyValue("extra", e.extra);
  if (files) {
    w.Key("files");
    w.BeginArray();
    for (const auto& f : e.files) {
      w.BeginObject();
      w.KeyBool("binary", f.binary);
      if (!f.diff.empty()) w.KeyString("diff", f.diff);
      if (!f.link_target.empty()) w.KeyString("link_target", f.link_target);
      w.KeyInt("mode_after", f.mode_after);
      w.KeyInt("mode_before", f.mode_before);
      w.KeyString("op", f.op);
      w.KeyString("path", f.path);
      w.KeyInt("size_after", f.size_after);
      w.KeyInt("size_before", f.size_before);
      w.KeyString("type", f.type);
      if (!f.type_before.empty()) w.KeyString("type_before", f.type_before);
      w.EndObject();
    }
    w.EndArray();
    w.KeyInt("files_changed", e.files_changed);
  }
  w.KeyString("kind", e.kind);
  w.Key("preview");
  w.BeginArray();
  for (const auto& r : e.preview) {
    w.BeginObject();
    w.KeyValue("after", r.after);
    w.KeyValue("before", r.before);
    w.KeyString("op", r.op);
    w.KeyString("table", r.table);
    w.EndObject();
  }
  w.EndArray();
  w.KeyInt("preview_omitted", e.preview_omitted);
  w.KeyInt("rows_changed", e.RowsChanged());
  w.Key("tables");
  w.BeginArray();
  for (const auto& t : e.tables) {
    w.BeginObject();
    w.KeyBool("all_rows_deleted", t.all_rows_deleted);
    w.KeyBool("all_rows_updated", t.all_rows_updated);
    w.KeyInt("deleted", t.deleted);
    w.KeyBool("has_primary_key", t.has_primary_key);
    w.KeyInt("inserted", t.inserted);
    w.KeyInt("rows_after", t.rows_after);
    w.KeyString("table", t.table);
    w.KeyInt("updated", t.updated);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

}  // namespace

void ActionJsonTexts(const Action& a, std::initializer_list<ActionText> texts) {
  std::string value;  // a value that several texts take, written once
  for (const ActionText& t : texts) {
    t.out->clear();
    t.out->reserve(1024);
    *t.out += '{';
  }
  // Writes key `k` into every text that keeps it and that `which` selects. The value is
  // written once: straight into the one text that takes it, or else into `value` and copied
  // into each (the reply's rows go straight into the reply). The keys are plain ASCII.
  auto emit_to = [&](std::string_view k, const auto& write, const auto& which) {
    std::string* takers[8];
    size_t n = 0;
    for (const ActionText& t : texts) {
      if (!which(t) || !t.keep(k)) continue;
      if (n == std::size(takers)) throw std::logic_error("ActionJsonTexts: more than 8 texts");
      takers[n++] = t.out;
    }
    if (n == 0) return;
    for (size_t i = 0; i < n; ++i) {
      std::string& out = *takers[i];
      if (out.size() > 1) out += ',';
      out += '"';
      out += k;
      out += "\":";
      if (n == 1) {
        JsonTextWriter w(&out);
        write(w);
        return;
      }
      if (i == 0) {
        value.clear();
        JsonTextWriter w(&value);
        write(w);
      }
      out += value;
    }
  };
  auto emit = [&](std::string_view k, const auto& write) {
    emit_to(k, write, [](const ActionText&) { return true; });
  };
  // Each key of ActionToJson, in the order CanonicalJson writes them (sorted).
  emit("agent", [&](JsonTextWriter& w) { w.String(a.agent); });
  emit("approvals", [&](JsonTextWriter& w) {
    int approvals = 0;
    for (const auto& v : a.votes) approvals += v.approve ? 1 : 0;
    w.Int(approvals);
  });
  emit("args", [&](JsonTextWriter& w) { w.Value(a.args); });
  emit("created_ms", [&](JsonTextWriter& w) { w.Int(a.created_ms); });
  emit("dry_run", [&](JsonTextWriter& w) { w.Bool(a.dry_run); });
  emit("effect", [&](JsonTextWriter& w) { WriteEffect(a.effect, w); });
  emit("effect_hash", [&](JsonTextWriter& w) { w.String(a.effect.effect_hash); });
  if (!a.error.empty()) emit("error", [&](JsonTextWriter& w) { w.String(a.error); });
  if (!a.error_code.empty()) emit("error_code", [&](JsonTextWriter& w) { w.String(a.error_code); });
  emit("expires_ms", [&](JsonTextWriter& w) { w.Int(a.expires_ms); });
  emit("id", [&](JsonTextWriter& w) { w.String(a.id); });
  emit("kind", [&](JsonTextWriter& w) { w.String(a.kind); });
  emit("quorum", [&](JsonTextWriter& w) { w.Int(a.quorum); });
  emit("reasons", [&](JsonTextWriter& w) { w.Strings(a.reasons); });
  // "result": a.result for the texts without a stand-in (written once for them all), and
  // each stand-in for its own text.
  emit_to(
      "result", [&](JsonTextWriter& w) { w.Value(a.result); },
      [](const ActionText& t) { return t.result == nullptr; });
  for (const ActionText& t : texts) {
    if (t.result == nullptr) continue;
    emit_to(
        "result", [&](JsonTextWriter& w) { w.Value(*t.result); },
        [&](const ActionText& u) { return &u == &t; });
  }
  emit("reversible", [&](JsonTextWriter& w) { w.Bool(a.reversible); });
  emit("risk", [&](JsonTextWriter& w) { w.String(RiskName(a.risk)); });
  emit("status", [&](JsonTextWriter& w) { w.String(ActionStatusName(a.status)); });
  emit("target", [&](JsonTextWriter& w) { w.String(a.target); });
  emit("updated_ms", [&](JsonTextWriter& w) { w.Int(a.updated_ms); });
  emit("votes", [&](JsonTextWriter& w) {
    w.BeginArray();
    for (const auto& v : a.votes) {
      w.BeginObject();
      w.KeyString("approver", v.approver);
      w.KeyInt("at_ms", v.at_ms);
      w.KeyString("reason", v.reason);
      w.KeyString("vote", v.approve ? "approve" : "reject");
      w.EndObject();
    }
    w.EndArray();
  });
  if (!a.would_status.empty()) {
    emit("would_status", [&](JsonTextWriter& w) { w.String(a.would_status); });
  }
  for (const ActionText& t : texts) *t.out += '}';
}

std::string ActionJsonText(const Action& a, const std::function<bool(std::string_view)>& keep,
                           const Json* result) {
  std::string out;
  ActionJsonTexts(a, {{keep, result, &out}});
  return out;
}

bool IsStoredBodyKey(std::string_view key) {
  return key != "votes" && key != "approvals";
}

std::string StoredActionBody(const Action& a) {
  return ActionJsonText(a, IsStoredBodyKey);
}

Json ActionToJson(const Action& a) {
  Json votes = Json::array();
  for (const auto& v : a.votes) {
    votes.push_back({{"approver", v.approver},
                     {"vote", v.approve ? "approve" : "reject"},
                     {"reason", v.reason},
                     {"at_ms", v.at_ms}});
  }
  Json j = {{"id", a.id},
            {"status", ActionStatusName(a.status)},
            {"risk", RiskName(a.risk)},
            {"reasons", a.reasons},
            {"effect", EffectToJson(a.effect)},
            {"effect_hash", a.effect.effect_hash},
            {"result", a.result},
            {"agent", a.agent},
            {"target", a.target},
            {"kind", a.kind},
            {"args", a.args},
            {"created_ms", a.created_ms},
            {"updated_ms", a.updated_ms},
            {"quorum", a.quorum},
            {"approvals", 0},
            {"votes", std::move(votes)},
            {"expires_ms", a.expires_ms},
            {"reversible", a.reversible},
            {"dry_run", a.dry_run}};
  int approvals = 0;
  for (const auto& v : a.votes) approvals += v.approve ? 1 : 0;
  j["approvals"] = approvals;
  if (!a.error.empty()) j["error"] = a.error;
  if (!a.error_code.empty()) j["error_code"] = a.error_code;
  if (!a.would_status.empty()) j["would_status"] = a.would_status;
  return j;
}

Result<Action> ActionFromJson(const Json& j) {
  if (!j.is_object()) return Status::Corruption("action is not a JSON object");
  Action a;
  std::string status, risk;
  RETURN_IF_ERROR(Field(j, "id", &a.id));
  RETURN_IF_ERROR(Field(j, "status", &status));
  RETURN_IF_ERROR(Field(j, "risk", &risk));
  RETURN_IF_ERROR(Field(j, "reasons", &a.reasons));
  RETURN_IF_ERROR(Field(j, "agent", &a.agent));
  RETURN_IF_ERROR(Field(j, "target", &a.target));
  RETURN_IF_ERROR(Field(j, "kind", &a.kind));
  RETURN_IF_ERROR(Field(j, "created_ms", &a.created_ms));
  RETURN_IF_ERROR(Field(j, "updated_ms", &a.updated_ms));
  RETURN_IF_ERROR(Field(j, "quorum", &a.quorum));
  RETURN_IF_ERROR(Field(j, "expires_ms", &a.expires_ms));
  RETURN_IF_ERROR(Field(j, "reversible", &a.reversible));
  RETURN_IF_ERROR(Field(j, "dry_run", &a.dry_run));
  RETURN_IF_ERROR(Field(j, "error", &a.error));
  RETURN_IF_ERROR(Field(j, "error_code", &a.error_code));
  RETURN_IF_ERROR(Field(j, "would_status", &a.would_status));
  auto st = ParseActionStatus(status);
  auto rk = ParseRisk(risk);
  if (!st) return Status::Corruption("action has unknown status '" + status + "'");
  if (!rk) return Status::Corruption("action has unknown risk '" + risk + "'");
  a.status = *st;
  a.risk = *rk;
  if (auto it = j.find("args"); it != j.end()) a.args = *it;
  if (auto it = j.find("result"); it != j.end()) a.result = *it;
  if (auto it = j.find("effect"); it != j.end()) {
    ASSIGN_OR_RETURN(a.effect, EffectFromJson(*it));
  }
  // The store keeps votes in their own table and leaves them out of the body; an action
  // that comes over the API carries them (the remote CLI shows them like the local one).
  if (auto it = j.find("votes"); it != j.end() && it->is_array()) {
    for (const Json& v : *it) {
      if (!v.is_object()) return Status::Corruption("a vote is not a JSON object");
      Vote vote;
      std::string kind;
      RETURN_IF_ERROR(Field(v, "approver", &vote.approver));
      RETURN_IF_ERROR(Field(v, "vote", &kind));
      RETURN_IF_ERROR(Field(v, "reason", &vote.reason));
      RETURN_IF_ERROR(Field(v, "at_ms", &vote.at_ms));
      if (kind != "approve" && kind != "reject") {
        return Status::Corruption("a vote is neither approve nor reject: '" + kind + "'");
      }
      vote.approve = kind == "approve";
      a.votes.push_back(std::move(vote));
    }
  }
  return a;
}

}  // namespace airlock
