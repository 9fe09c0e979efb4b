#pragma once
// `substrated report INPUT -o FILE`: the HTML report of a diag (or probe --json) document.
#include <string>
#include <vector>

namespace substrate {

// INPUT: `substrated diag --json` output, or `probe --json` output (wrapped, daemon/diag_report.hpp).
// Writes FILE atomically. Exit 0 when written; 2 with one line on stderr naming the cause
// (unreadable or non-JSON input, a field of the wrong shape, an unwritable FILE, bad arguments).
int report_command(const std::vector<std::string>& args);

}  // namespace substrate
