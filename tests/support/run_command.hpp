#pragma once
// Runs the real substrated binary with a shell command line and captures stdout and the exit code.
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace substrate::testing {

struct CommandOutput {
  int exit_code = -1;
  std::string output;
};

inline CommandOutput run_substrated(const std::string& arguments) {
  CommandOutput result;
  const std::string command = std::string(SUBSTRATE_BINARY) + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace substrate::testing
