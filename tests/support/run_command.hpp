#pragma once
// Runs the real substrated binary with a shell command line and captures stdout and the exit code.
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

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

// The UUID `substrated devices --json` reports for device `id` (lavapipe's for "vulkan0"), so a
// test's NVML stand-in GPU joins that device; empty when the device is not listed.
inline std::string device_uuid(const std::string& id) {
  const auto devices = nlohmann::json::parse(run_substrated("devices --json").output, nullptr, false);
  if (devices.is_discarded() || !devices.contains("devices")) return "";
  for (const auto& d : devices["devices"]) {
    if (d.value("id", "") == id) return d.value("uuid", "");
  }
  return "";
}

}  // namespace substrate::testing
