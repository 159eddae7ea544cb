// Benchmark 3: Classifier::Classify of a one-row UPDATE's Effect under a policy of 1,000
// rules, loaded from YAML text by LoadPolicyText like a real policy file.
//
// Two rule layouts:
//   mixed (arg 0): rules spread over 10 targets, a fifth of them naming no target; the
//                  classifier's by-target index leaves ~280 rules to test for app-db;
//   worst (arg 1): every rule names app-db or no target, so all 1,000 are tested.
// In both, 5 rules match (each adds a reason string, as a real match does); the others fail
// on agent, kind, rows, table or op, in a varied order.
#include <chrono>

#include "bench_common.h"
#include "policy/policy.h"

namespace airlock::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kRules = 1000;
constexpr int kTargets = 10;
constexpr int kAgents = 5;
constexpr const char* kOps[] = {"insert", "delete", "drop_table", "alter_table", "create_index",
                                "pragma_write", "attach", "update"};

std::string TargetName(int i) { return i == 0 ? "app-db" : "db-" + std::to_string(i); }
std::string AgentName(int i) { return i == 0 ? "support-bot" : "agent-" + std::to_string(i); }

std::string PolicyText(bool worst) {
  std::string s = "version: 1\ntargets:\n";
  for (int i = 0; i < kTargets; ++i) {
    s += "  " + TargetName(i) + ": {kind: sqlite, path: /srv/data/" + TargetName(i) +
         ".db, environment: production}\n";
  }
  s += "agents:\n";
  for (int i = 0; i < kAgents; ++i) {
    std::string tok(64, "0123456789abcdef"[i + 1]);
    s += "  - {name: " + AgentName(i) + ", token_sha256: \"" + tok + "\", scopes: [";
    for (int t = 0; t < kTargets; ++t) s += (t ? ", " : "") + TargetName(t);
    s += "]}\n";
  }
  s += "rules:\n";
  for (int i = 0; i < kRules; ++i) {
    std::string m;
    const bool matches = i % 200 == 7;  // 5 of 1,000, all naming app-db
    const bool any_target = i % 5 == 0;
    if (matches) {
      m += "target: app-db, ";
    } else if (!any_target) {
      m += "target: " + TargetName(worst ? 0 : (i / 5) % kTargets) + ", ";
    }
    if (matches) {
      m += "table: orders, op: update";
    } else {
      switch (i % 6) {
        case 0:  // a different table
          m += "table: table_" + std::to_string(i) + ", op: " + kOps[i % 8];
          break;
        case 1:  // another agent
          m += "agent: " + AgentName(1 + i % (kAgents - 1)) + ", table: orders";
          break;
        case 2:  // more rows than one
          m += "rows_gt: " + std::to_string(1 + i % 500) + ", kind: sql";
          break;
        case 3:  // an op the effect does not have
          m += "op: " + std::string(kOps[i % 7]) + ", table: orders";
          break;
        case 4:  // another kind
          m += "kind: shell";
          break;
        default:  // the right table, more rows
          m += "table: orders, op: update, rows_gt: " + std::to_string(10 + i);
          break;
      }
    }
    s += "  - {match: {" + m + "}, risk: " + (i % 3 ? "high" : "critical") +
         ", reason: \"rule number " + std::to_string(i) + "\"}\n";
  }
  return s;
}

// What the SQLite connector reports for `UPDATE orders SET ... WHERE id = 42`.
Effect OneRowUpdate() {
  Effect e;
  e.kind = "sql";
  TableChange tc;
  tc.table = "orders";
  tc.updated = 1;
  tc.rows_after = -1;
  e.tables.push_back(tc);
  RowChange rc;
  rc.table = "orders";
  rc.op = "update";
  rc.before = {{"id", 42}, {"payload", std::string(200, 'a')}};
  rc.after = {{"id", 42}, {"payload", std::string(200, 'b')}};
  e.preview.push_back(rc);
  e.effect_hash = std::string(64, 'e');
  return e;
}

struct Fixture {
  std::shared_ptr<const Policy> policy;
  std::unique_ptr<Classifier> classifier;
  Effect effect = OneRowUpdate();
};

bool Load(benchmark::State& state, bool worst, Fixture* f) {
  auto p = LoadPolicyText(PolicyText(worst), "/etc/airlock/airlock.yaml");
  if (!p.ok()) {
    state.SkipWithError(p.status().ToString().c_str());
    return false;
  }
  if ((*p)->rules.size() != kRules) {
    state.SkipWithError("policy does not hold 1,000 rules");
    return false;
  }
  f->policy = *p;
  f->classifier = std::make_unique<Classifier>(f->policy);
  Classification c = f->classifier->Classify("support-bot", "app-db", f->effect);
  // 1 default reason (low) + 5 matching rules; a critical one among them.
  if (c.reasons.size() != 6) {
    state.SkipWithError(("expected 6 reasons, got " + std::to_string(c.reasons.size())).c_str());
    return false;
  }
  state.counters["risk"] = static_cast<double>(c.risk);
  state.counters["matched_rules"] = static_cast<double>(c.reasons.size() - 1);
  return true;
}

// Percentiles: every call timed on its own with steady_clock (its ~20-30 ns overhead is
// included, which errs against airlock). 10,000 warm-up calls, then 100,000 timed ones.
void BM_Classify1000RulesLatency(benchmark::State& state) {
  Fixture f;
  if (!Load(state, state.range(0) == 1, &f)) return;
  constexpr int kWarmup = 10000;
  constexpr int kCalls = 100000;
  for (auto _ : state) {
    for (int i = 0; i < kWarmup; ++i) {
      benchmark::DoNotOptimize(f.classifier->Classify("support-bot", "app-db", f.effect));
    }
    Samples samples;
    samples.Reserve(kCalls);
    for (int i = 0; i < kCalls; ++i) {
      auto t0 = Clock::now();
      Classification c = f.classifier->Classify("support-bot", "app-db", f.effect);
      auto t1 = Clock::now();
      benchmark::DoNotOptimize(c);
      samples.Add(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    }
    samples.Report(state);
  }
}

// The same call in Google Benchmark's own loop: its mean per call.
void BM_Classify1000Rules(benchmark::State& state) {
  Fixture f;
  if (!Load(state, state.range(0) == 1, &f)) return;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.classifier->Classify("support-bot", "app-db", f.effect));
  }
}

BENCHMARK(BM_Classify1000RulesLatency)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Classify1000Rules)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace airlock::bench
