// Human output of the CLI: aligned, readable, risk coloured on a terminal.
#pragma once

#include <string>
#include <vector>

#include "audit/audit.h"
#include "core/types.h"

namespace airlock::cli {

struct Style {
  bool color = false;  // stdout is a terminal and NO_COLOR is not set
};

std::string RiskLabel(Risk r, const Style& s);         // "CRITICAL" coloured
std::string StatusLine(const Action& a, const Style& s);  // one-line summary of a decision
std::string ShowAction(const Action& a, const Style& s);   // the full `show` view
std::string PendingTable(const std::vector<Action>& actions, const Style& s);
// A read's rows as an aligned table.
std::string ResultTable(const Json& result);
// Aligned text table: header + rows; cells are truncated to max_width.
std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows, size_t max_width = 40);
std::string ValueText(const Json& v);  // a cell: NULL, 42, text, x'0a0b'

}  // namespace airlock::cli
