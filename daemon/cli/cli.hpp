#pragma once
// Command-line entry: `substrated <command> [options]`.
#include <string>
#include <vector>

#include "daemon/exit_code.hpp"

namespace substrate::cli {

// Runs one command line (argv without the program name). Returns the process exit code
// (daemon/exit_code.hpp); errors are one line on stderr.
int run(const std::vector<std::string>& args);

}  // namespace substrate::cli
