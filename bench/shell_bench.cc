// The shell sandbox as a library call (no CLI, no policy, no store), and a dry-run of
// `touch x` through the shell connector in a 100,000-file workspace against a 10-file one:
// the cost must come from what the command changed, not from the size of the workspace.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "bench_common.h"
#include "connectors/connector.h"
#include "connectors/shell/sandbox.h"

namespace airlock::bench {
namespace {

namespace fs = std::filesystem;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// DataDir()/shell-ws-N: N files in 100 directories; created once and reused.
std::string Workspace(int files) {
  const std::string dir = DataDir() + "/shell-ws-" + std::to_string(files);
  const std::string done = DataDir() + "/shell-ws-" + std::to_string(files) + ".done";
  if (fs::exists(done)) return dir;
  fs::remove_all(dir);
  for (int i = 0; i < files; ++i) {
    std::string sub = dir + "/d" + std::to_string(i % 100);
    if (i < 100) fs::create_directories(sub);
    std::ofstream(sub + "/f" + std::to_string(i) + ".txt") << "file " << i << "\n";
  }
  std::ofstream(done) << files << "\n";
  return dir;
}

std::string StateDir(const std::string& name) {
  std::string dir = DataDir() + "/shell-state-" + name;
  fs::create_directories(dir + "/scratch");
  return dir;
}

// The library benchmarks' sandbox: `argv` over the 10-file workspace, in a scratch dir of
// its own per benchmark.
shell::SandboxSpec LibrarySpec(const std::string& scratch, std::vector<std::string> argv) {
  shell::SandboxSpec spec;
  spec.argv = std::move(argv);
  spec.workspace = Workspace(10);
  spec.scratch_dir = StateDir("lib") + "/scratch/" + scratch;
  fs::create_directories(spec.scratch_dir);
  spec.env = {"PATH=/usr/bin:/bin"};
  return spec;
}

void BM_SandboxTrue(benchmark::State& state) {
  const shell::SandboxSpec spec = LibrarySpec("run", {"true"});
  Samples samples;
  for (auto _ : state) {
    int64_t t0 = NowNs();
    auto r = shell::RunSandboxed(spec, nullptr);
    samples.Add(NowNs() - t0);
    if (!r.ok() || r->exit_code != 0) {
      state.SkipWithError(r.ok() ? "true did not exit 0" : r.status().message().c_str());
      return;
    }
  }
  samples.Report(state);
}

// The same sandbox built for the command, timed from Prepare to the outcome (the command's
// output, and the upper layer's top directory read by the inspect callback): the part of a
// run a command waits for in the shell connector, which tears each run down on a thread of
// its own while the action is recorded (its inspection also builds the effect, so this is a
// lower bound of the connector's). The teardown (Finish: init's namespaces go, the cgroups
// are removed, the supervisor is reaped) is done untimed before the next iteration, so it
// never overlaps the next run; in the connector it may overlap the next command.
void BM_SandboxTrueToOutcome(benchmark::State& state) {
  const shell::SandboxSpec spec = LibrarySpec("outcome", {"true"});
  Samples samples;
  for (auto _ : state) {
    int64_t t0 = NowNs();
    auto prepared = shell::PreparedRun::Prepare(spec);
    if (!prepared.ok()) {
      state.SkipWithError(prepared.status().message().c_str());
      return;
    }
    auto r = (*prepared)->Run([](const std::string& upper) -> Status {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(upper, ec)) (void)e;
      return ec ? Status::IoError("read the upper layer: " + ec.message()) : Status::Ok();
    });
    samples.Add(NowNs() - t0);
    state.PauseTiming();
    if (!r.ok() || r->exit_code != 0) {
      state.SkipWithError(r.ok() ? "true did not exit 0" : r.status().message().c_str());
      return;
    }
    (void)(*prepared)->Finish();
    state.ResumeTiming();
  }
  samples.Report(state);
}

// The same command in a sandbox built ahead, before the command was known (what airlock
// serve keeps per shell target): timed from Run to the outcome. The build (Prepare, then
// 20 ms for init to get ready) and the teardown (Finish) are not timed.
void BM_SandboxTrueBuiltAhead(benchmark::State& state) {
  const shell::SandboxSpec spec = LibrarySpec("ahead", {});  // the command comes with Run
  const std::vector<std::string> argv = {"true"};
  Samples samples;
  for (auto _ : state) {
    state.PauseTiming();
    auto prepared = shell::PreparedRun::Prepare(spec);
    if (!prepared.ok()) {
      state.SkipWithError(prepared.status().message().c_str());
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    state.ResumeTiming();
    int64_t t0 = NowNs();
    auto r = (*prepared)->Run(argv, nullptr);
    samples.Add(NowNs() - t0);
    state.PauseTiming();
    if (!r.ok() || r->exit_code != 0) {
      state.SkipWithError(r.ok() ? "true did not exit 0" : r.status().message().c_str());
      return;
    }
    (void)(*prepared)->Finish();
    state.ResumeTiming();
  }
  samples.Report(state);
}

void BM_DryRunTouch(benchmark::State& state) {
  const int files = static_cast<int>(state.range(0));
  ConnectorConfig config;
  config.name = "ws" + std::to_string(files);
  config.kind = "shell";
  config.fields = {{"workspace", fs::canonical(Workspace(files)).string()},
                   {"state_dir", StateDir(config.name)}};
  auto connector = CreateConnector(config);
  if (!connector.ok()) {
    state.SkipWithError(connector.status().message().c_str());
    return;
  }
  // Arg 1 = 1: the connector keeps a sandbox built ahead (as in airlock serve), and each
  // command comes 100 ms after the last one ended (untimed), as an agent's next command would.
  const bool warm = state.range(1) == 1;
  if (warm) (*connector)->KeepWarm();
  const Json args = {{"argv", {"touch", "x"}}};
  Samples samples;
  for (auto _ : state) {
    if (warm) {
      state.PauseTiming();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      state.ResumeTiming();
    }
    int64_t t0 = NowNs();
    auto r = (*connector)->DryRun(args);
    samples.Add(NowNs() - t0);
    if (!r.ok() || r->effect.files_changed != 1) {
      state.SkipWithError(r.ok() ? "touch x did not add one file" : r.status().message().c_str());
      return;
    }
  }
  samples.Report(state);
}

BENCHMARK(BM_SandboxTrue)->Iterations(300)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SandboxTrueToOutcome)->Iterations(300)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SandboxTrueBuiltAhead)->Iterations(300)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DryRunTouch)->Args({10, 0})->Iterations(200)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DryRunTouch)->Args({100000, 0})->Iterations(200)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DryRunTouch)->Args({10, 1})->Iterations(200)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace airlock::bench
