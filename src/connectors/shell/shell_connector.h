// The shell target: a command runs in a copy-on-write sandbox over the workspace
// (sandbox.h); its effect is the overlay's upper layer (layer.h). Apply never re-runs the
// command: it commits exactly the captured layer, after checking that the workspace still
// holds what the preview saw. Undo restores pre-images saved just before the commit.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "connectors/connector.h"
#include "connectors/shell/layer.h"
#include "connectors/shell/sandbox.h"

namespace airlock {

// fields (policy loader + gateway): workspace (absolute), state_dir (airlock-owned, absolute),
// network ("off"|"on"), memory_bytes, pids, cpu, timeout_ms, max_upper_size_bytes,
// max_upper_files, max_output_bytes, hide (paths), hide_always (airlock's own files),
// protect (globs), max_preview_files.
// args: {"argv": ["cmd", "arg", ...]}.
Result<std::unique_ptr<Connector>> CreateShellConnector(const ConnectorConfig& config);

// How many sandboxes built ahead (Connector::KeepWarm) this process's shell targets have made
// ready for their next command so far: a test waits on it rather than on a guess of how long
// a build takes.
int64_t ShellStandbysReadySoFar();

// ---- an MCP server run in a shell target's sandbox (mcp/proxy.cc, connectors/mcp) ----------
// `target` is the shell target's config as the gateway builds it (with state_dir and
// hide_always).

// The target's sandbox (workspace, limits, hidden paths, network) for a long-lived command:
// the target's environment defaults overridden by `env`, `read_only_paths` bound, and a fresh
// scratch directory under the target's state dir (the caller removes it after the run).
Result<shell::SandboxSpec> ShellSandboxFor(const ConnectorConfig& target,
                                           const std::vector<std::string>& argv,
                                           const std::map<std::string, std::string>& env,
                                           const std::vector<std::string>& read_only_paths);
// The upper layer `upper` read against the target's workspace (file contents stored in the
// target's blob store).
Result<shell::CapturedLayer> CaptureShellLayer(const ConnectorConfig& target,
                                               const std::string& upper);
// Adds the file part of a shell effect to *e (files, files_changed, extra added / changed /
// deleted / protected / outside_symlinks / refused / layer), as `airlock exec` reports it, so
// that the policy classifies it alike. Returns the stored layer's key.
Result<std::string> AddShellFileEffect(const ConnectorConfig& target,
                                       const shell::CapturedLayer& cap, Effect* e);

// ---- airlock store gc ---------------------------------------------------------------------

// What the records still name in a shell target's state: the layers of actions that may
// still be committed (pending, applying; their effect's extra.layer) and their held MCP
// answers (extra.held_answer), and the undo layers of actions that may still be rolled back.
struct ShellLiveRecords {
  std::vector<std::string> layers;       // manifest keys
  std::vector<std::string> undo_layers;  // manifest keys from undo data {"layer": KEY}
  std::vector<std::string> held_answers;
};

// Removes from the target's blob store every blob that no live record names (the manifests
// and every content hash in them) and that nothing wrote or reused before `cutoff_s`, and
// likewise the held answers of MCP calls that no pending call names. Fail closed: a manifest
// that cannot be read (it could name anything) or a commit's journal waiting for recovery
// removes nothing. Returns {target, blobs_kept, blobs_removed, bytes_removed,
// temporaries_removed, held_answers_removed}.
Result<Json> CollectShellGarbage(const ConnectorConfig& target, const ShellLiveRecords& live,
                                 int64_t cutoff_s, bool dry_run);

}  // namespace airlock
