// The shell target: a command runs in a copy-on-write sandbox over the workspace
// (sandbox.h); its effect is the overlay's upper layer (layer.h). Apply never re-runs the
// command: it commits exactly the captured layer, after checking that the workspace still
// holds what the preview saw. Undo restores pre-images saved just before the commit.
#pragma once

#include <memory>

#include "connectors/connector.h"

namespace airlock {

// fields (policy loader + gateway): workspace (absolute), state_dir (airlock-owned, absolute),
// network ("off"|"on"), memory_bytes, pids, cpu, timeout_ms, max_upper_size_bytes,
// max_upper_files, max_output_bytes, hide (paths), hide_always (airlock's own files),
// protect (globs), max_preview_files.
// args: {"argv": ["cmd", "arg", ...]}.
Result<std::unique_ptr<Connector>> CreateShellConnector(const ConnectorConfig& config);

}  // namespace airlock
