#pragma once
// `substrated diag --level 1|2|3|4` (docs/diag.md): the command line, the run
// (daemon/diag_run.hpp), the output (text or the JSON the HTML report reads) and the exit code.
#include <string>
#include <vector>

namespace substrate {

// Returns the exit code: 0 every device passed, 1 a device failed, 2 could not run (bad
// arguments, no device, a busy device refused, an error, or an interrupted run without a fault).
int diag_command(const std::vector<std::string>& args);

}  // namespace substrate
