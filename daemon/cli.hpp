#pragma once
// Command-line entry: `substrated <command> [options]`. Returns the process exit code.
#include <string>
#include <vector>

namespace substrate::cli {

// Exit codes shared by every command.
inline constexpr int k_exit_ok = 0;        // every check passed
inline constexpr int k_exit_fault = 1;     // a check found a fault
inline constexpr int k_exit_cannot_run = 2;  // bad arguments, no device, backend error
inline constexpr int k_exit_config = 78;   // EX_CONFIG: the daemon's configuration is invalid

int run(const std::vector<std::string>& args);

}  // namespace substrate::cli
